//! Content-defined chunking (FastCDC 2020, streaming) and chunk ids (BLAKE3 of the plain
//! chunk). Spec: `store-format/README.md`, section "Chunking".

use std::io::Read;

use fastcdc::v2020::{FastCDC, StreamCDC};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::store::config::ChunkerParams;

/// A chunk id: BLAKE3 of the chunk's plain bytes.
pub type ChunkId = [u8; 32];

/// Chunks are read and hashed in batches of about this many bytes: big enough to keep every
/// core busy hashing, small enough to bound memory.
const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Smaller batches (a file backend's .ini files) are hashed on the calling thread: waking
/// rayon's workers for them cost more than the hashing, mostly in their spinning
/// `sched_yield` calls while MariaDB and mysqldump need the cores.
const PARALLEL_BYTES: usize = 256 * 1024;

/// Splits a stream into chunks, a batch at a time. Holds at most one batch plus the FastCDC
/// buffer (`max_size`) in memory.
pub(crate) struct Chunker<R: Read> {
    cdc: StreamCDC<R>,
}

impl<R: Read> Chunker<R> {
    pub(crate) fn new(source: R, p: &ChunkerParams) -> Chunker<R> {
        Chunker {
            cdc: StreamCDC::new(source, p.min_size, p.avg_size, p.max_size),
        }
    }

    /// The next batch of chunks with their ids (hashed in parallel), or an empty vector at
    /// the end of the stream.
    pub(crate) fn next_batch(&mut self) -> Result<Vec<(ChunkId, Vec<u8>)>> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        while bytes < BATCH_BYTES {
            match self.cdc.next() {
                None => break,
                Some(Err(e)) => return Err(Error::io("reading member content", e.into())),
                Some(Ok(c)) => {
                    bytes += c.length;
                    batch.push(c.data);
                }
            }
        }
        if bytes < PARALLEL_BYTES {
            return Ok(batch.into_iter().map(|d| (chunk_id(&d), d)).collect());
        }
        Ok(batch.into_par_iter().map(|d| (chunk_id(&d), d)).collect())
    }
}

/// Cuts `buf`, the next bytes of a stream from a chunk boundary on, as FastCDC cuts the whole
/// stream (same parameters as `Chunker`). Unless `last`, the final chunk is left out: where it
/// ends depends on bytes not yet in `buf`. Returns the chunks' ids and ranges, in order.
pub(crate) fn cut_buffer(
    buf: &[u8],
    p: &ChunkerParams,
    last: bool,
) -> Vec<(ChunkId, std::ops::Range<usize>)> {
    let mut cuts: Vec<std::ops::Range<usize>> =
        FastCDC::new(buf, p.min_size, p.avg_size, p.max_size)
            .map(|c| c.offset..c.offset + c.length)
            .collect();
    if !last {
        cuts.pop();
    }
    cuts.into_par_iter()
        .map(|r| (chunk_id(&buf[r.clone()]), r))
        .collect()
}

pub(crate) fn chunk_id(data: &[u8]) -> ChunkId {
    *blake3::hash(data).as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_stream_in_order() {
        let data: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let mut c = Chunker::new(&data[..], &ChunkerParams::default());
        let mut joined = Vec::new();
        loop {
            let b = c.next_batch().unwrap();
            if b.is_empty() {
                break;
            }
            for (id, d) in b {
                assert_eq!(id, chunk_id(&d));
                assert!(d.len() <= 64 * 1024);
                joined.extend_from_slice(&d);
            }
        }
        assert_eq!(joined, data);
    }

    #[test]
    fn cutting_a_buffer_piecewise_matches_the_stream() {
        let data: Vec<u8> = (0..500_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        let p = ChunkerParams::default();
        let mut whole = Vec::new();
        let mut c = Chunker::new(&data[..], &p);
        loop {
            let b = c.next_batch().unwrap();
            if b.is_empty() {
                break;
            }
            whole.extend(b.into_iter().map(|(id, _)| id));
        }
        let mut pieces = Vec::new();
        let mut at = 0;
        for end in [100_000, 300_000, 300_001, 500_000] {
            let last = end == data.len();
            let cuts = cut_buffer(&data[at..end], &p, last);
            at += cuts.last().map_or(0, |c| c.1.end);
            pieces.extend(cuts.into_iter().map(|c| c.0));
        }
        assert_eq!(at, data.len());
        assert_eq!(pieces, whole);
    }
}
