//! The store's parsers of repository files, reachable for the fuzz targets (`crate::fuzz`):
//! what a reader does with a pack file and a snapshot file it finds on disk.

use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, Result};
use crate::store::chunker::ChunkId;
use crate::store::pack::{self, FLAG_DELTA, FLAG_ZSTD};
use crate::store::seal::{ChunkIds, PLAIN};
use crate::store::snapshot::{read_snapshot, read_snapshot_head};
use crate::store::storage::{snapshot_key, LocalDir, LocalObject};

/// Reads the pack at `path` as `verify` and the reader do: its trailer, then every group it
/// lists, decompressed (a delta group against an empty prefix: its references are elsewhere).
/// The file is read twice: as it is, and with the trailer's BLAKE3 set to match the body the
/// tail's length names, so that the fuzzer gets past the checksum into the table itself.
#[doc(hidden)]
pub fn fuzz_pack(path: &Path) -> Result<()> {
    let _ = read_pack(path);
    let mut data = std::fs::read(path).ctx("reading the pack")?;
    let n = data.len();
    if n >= pack::TRAILER_TAIL {
        let tail = n - pack::TRAILER_TAIL;
        let len = u32::from_le_bytes(data[tail + 32..tail + 36].try_into().expect("4 bytes"));
        if let Some(start) = tail.checked_sub(len as usize) {
            let sum = *blake3::hash(&data[start..tail]).as_bytes();
            data[tail..tail + 32].copy_from_slice(&sum);
            std::fs::write(path, &data).ctx("writing the pack")?;
            let _ = read_pack(path);
        }
    }
    Ok(())
}

fn read_pack(path: &Path) -> Result<()> {
    let (_, groups) = pack::read_trailer_file(path)?;
    let f = LocalObject::open(path).ctx("opening the pack")?;
    for g in groups.iter().take(64) {
        let Ok(stored) = pack::read_stored(&f, &PLAIN, g.offset, g.stored_len) else {
            continue;
        };
        let plain_len = g.plain_len() as usize;
        let _ = if g.flags & FLAG_DELTA != 0 {
            pack::decompress_delta(&stored, plain_len, &[])
        } else if g.flags & FLAG_ZSTD != 0 {
            pack::decompress_group(&stored, plain_len)
        } else {
            Ok(stored)
        };
    }
    Ok(())
}

/// Two readings of `data`: as a whole snapshot file (named by its BLAKE3, so that the name
/// check passes and the records are parsed), and as the metadata stream of a well-formed
/// snapshot file whose single metadata chunk it is. The files go to `dir/snapshots/`.
#[doc(hidden)]
pub fn fuzz_snapshot(dir: &Path, data: &[u8]) -> Result<()> {
    let storage = LocalDir::new(dir);
    std::fs::create_dir_all(dir.join("snapshots")).ctx("creating snapshots/")?;
    let id = blake3::hash(data).to_hex().to_string();
    std::fs::write(dir.join(snapshot_key(&id)), data).ctx("writing")?;
    let _ = read_snapshot_head(&storage, &id);

    let chunk: ChunkId = ChunkIds::Plain.id(data);
    let file = wrap_stream(&chunk, data.len() as u64)?;
    let id = blake3::hash(&file).to_hex().to_string();
    std::fs::write(dir.join(snapshot_key(&id)), &file).ctx("writing")?;
    let mut fetch = |c: &ChunkId| -> Result<Vec<u8>> {
        if c == &chunk {
            Ok(data.to_vec())
        } else {
            Err(crate::error::Error::Corrupt("unknown chunk".into()))
        }
    };
    let _ = read_snapshot(&storage, &id, &mut fetch, |_: crate::member::Member, _| {
        Ok(())
    });
    Ok(())
}

/// A snapshot file (format of `snapshot.rs`) whose metadata stream is one chunk.
fn wrap_stream(chunk: &ChunkId, meta_len: u64) -> Result<Vec<u8>> {
    let header = br#"{"repository":"00000000000000000000000000000000","time":0,"host":"h","backends":[],"sysinfo":[],"source":"create"}"#;
    let end =
        format!(r#"{{"members":1,"size":0,"meta_len":{meta_len},"packs_added":0,"written":0}}"#);
    let mut records = Vec::new();
    for (kind, payload) in [(1u8, &header[..]), (4, &chunk[..]), (3, end.as_bytes())] {
        records.push(kind);
        records.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        records.extend_from_slice(payload);
    }
    let mut out = b"OBKSNAP\x02".to_vec();
    let mut enc = zstd::Encoder::new(&mut out, 1).ctx("compressing")?;
    enc.write_all(&records).ctx("compressing")?;
    enc.finish().ctx("compressing")?;
    Ok(out)
}
