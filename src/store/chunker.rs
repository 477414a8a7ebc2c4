//! Content-defined chunking (FastCDC 2020, streaming) and chunk ids (BLAKE3 of the plain
//! chunk, keyed in an encrypted repository: `seal::ChunkIds`, which the caller passes).
//! Spec: `store-format/README.md`, section "Chunking".

use std::io::Read;
use std::ops::Range;

use fastcdc::v2020::FastCDC;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::store::config::ChunkerParams;
use crate::store::seal::ChunkIds;

/// A chunk id: BLAKE3 of the chunk's plain bytes (keyed in an encrypted repository).
pub(super) type ChunkId = [u8; 32];

/// Chunks are read and hashed in batches of about this many bytes: big enough to keep every
/// core busy hashing, small enough to bound memory.
const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Smaller batches (a file backend's .ini files) are hashed on the calling thread: waking
/// rayon's workers for them cost more than the hashing, mostly in their spinning
/// `sched_yield` calls while MariaDB and mysqldump need the cores.
const PARALLEL_BYTES: usize = 256 * 1024;

/// Splits a stream into chunks, a batch at a time, exactly where FastCDC's `StreamCDC` cuts
/// it. Reads into one buffer of about `BATCH_BYTES`, reused for every batch (and, through
/// `into_buffer`, for the writer's next stream), and hands out chunks as ranges of it:
/// `StreamCDC` copied every chunk into a vector of its own and shifted its whole 64 KiB buffer
/// after each one, ~9 bytes moved per byte chunked.
pub(crate) struct Chunker<R: Read> {
    source: R,
    params: ChunkerParams,
    ids: ChunkIds,
    buf: Vec<u8>,
    /// Bytes of `buf` read from the source.
    filled: usize,
    /// Where the bytes not cut yet (the previous batch's last, unfinished chunk) start.
    uncut: usize,
    eof: bool,
    chunks: Vec<(ChunkId, Range<usize>)>,
}

/// One batch: chunk ids with their bytes, in stream order.
pub(crate) struct Batch<'a> {
    data: &'a [u8],
    chunks: &'a [(ChunkId, Range<usize>)],
}

impl<'a> Batch<'a> {
    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (ChunkId, &'a [u8])> + '_ {
        self.chunks
            .iter()
            .map(|(id, r)| (*id, &self.data[r.clone()]))
    }
}

impl<R: Read> Chunker<R> {
    /// A chunker reading `source`, reusing `buf` (a previous chunker's `into_buffer`, or empty).
    pub(crate) fn new(source: R, p: &ChunkerParams, ids: ChunkIds, mut buf: Vec<u8>) -> Chunker<R> {
        // Room for a batch after the uncut tail of the previous one (< max_size).
        let len = BATCH_BYTES.max(4 * p.max_size as usize) + p.max_size as usize;
        if buf.len() < len {
            buf = vec![0; len];
        }
        Chunker {
            source,
            params: p.clone(),
            ids,
            buf,
            filled: 0,
            uncut: 0,
            eof: false,
            chunks: Vec::new(),
        }
    }

    /// The buffer, for the next chunker.
    pub(crate) fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    /// The next batch of chunks with their ids (hashed in parallel), or an empty batch at
    /// the end of the stream.
    pub(crate) fn next_batch(&mut self) -> Result<Batch<'_>> {
        self.buf.copy_within(self.uncut..self.filled, 0);
        self.filled -= self.uncut;
        self.uncut = 0;
        let want = self.buf.len() - self.params.max_size as usize;
        while !self.eof && self.filled < want {
            match self.source.read(&mut self.buf[self.filled..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("reading member content", e)),
            }
        }
        let data = &self.buf[..self.filled];
        let p = &self.params;
        let mut cuts: Vec<Range<usize>> = FastCDC::new(data, p.min_size, p.avg_size, p.max_size)
            .map(|c| c.offset..c.offset + c.length)
            .collect();
        // Where the last chunk ends depends on bytes not read yet.
        if !self.eof {
            cuts.pop();
        }
        self.uncut = cuts.last().map_or(0, |c| c.end);
        let bytes = self.uncut;
        self.chunks.clear();
        let ids = &self.ids;
        if bytes < PARALLEL_BYTES {
            self.chunks
                .extend(cuts.into_iter().map(|r| (ids.id(&data[r.clone()]), r)));
        } else {
            cuts.into_par_iter()
                .map(|r| (ids.id(&data[r.clone()]), r))
                .collect_into_vec(&mut self.chunks);
        }
        Ok(Batch {
            data,
            chunks: &self.chunks,
        })
    }
}

/// Cuts `buf`, the next bytes of a stream from a chunk boundary on, as FastCDC cuts the whole
/// stream (same parameters as `Chunker`). Unless `last`, the final chunk is left out: where it
/// ends depends on bytes not yet in `buf`. Returns the chunks' ids and ranges, in order.
/// Hashed on the calling thread: its callers cut a metadata stream's tail (64-256 KiB) as
/// it grows, hundreds of times per snapshot, and each wake-up of rayon's workers made them
/// spin in `sched_yield` against the walk and the server (see `PARALLEL_BYTES`).
pub(crate) fn cut_buffer(
    buf: &[u8],
    p: &ChunkerParams,
    ids: &ChunkIds,
    last: bool,
) -> Vec<(ChunkId, Range<usize>)> {
    let mut cuts: Vec<Range<usize>> = FastCDC::new(buf, p.min_size, p.avg_size, p.max_size)
        .map(|c| c.offset..c.offset + c.length)
        .collect();
    if !last {
        cuts.pop();
    }
    cuts.into_iter()
        .map(|r| (ids.id(&buf[r.clone()]), r))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk_id(data: &[u8]) -> ChunkId {
        ChunkIds::Plain.id(data)
    }

    /// Hands out its bytes in pieces of varying size, as pipes and wrapped readers do.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.1 = (self.1 * 7 + 13) % 50_000 + 1;
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn all_chunks<R: Read>(c: &mut Chunker<R>) -> Vec<(ChunkId, Vec<u8>)> {
        let mut out = Vec::new();
        loop {
            let b = c.next_batch().unwrap();
            if b.is_empty() {
                return out;
            }
            out.extend(b.iter().map(|(id, d)| (id, d.to_vec())));
        }
    }

    /// Chunks are cut exactly where fastcdc's StreamCDC cuts (the spec's definition, which
    /// older snapshots were cut with), across batches and partial reads, with the buffer
    /// reused from one stream to the next.
    #[test]
    fn chunks_are_stream_cdc_chunks() {
        let p = ChunkerParams::default();
        let data: Vec<u8> = (0..20_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 ^ (i / 100_000) as u8)
            .collect();
        let mut buf = Vec::new();
        for len in [0, 1, 5_000, 70_000, 9_000_000, 20_000_000] {
            let want: Vec<(ChunkId, Vec<u8>)> =
                fastcdc::v2020::StreamCDC::new(&data[..len], p.min_size, p.avg_size, p.max_size)
                    .map(|c| {
                        let c = c.unwrap();
                        (chunk_id(&c.data), c.data)
                    })
                    .collect();
            let mut c = Chunker::new(Trickle(&data[..len], 0), &p, ChunkIds::Plain, buf);
            let got = all_chunks(&mut c);
            buf = c.into_buffer();
            assert_eq!(got.len(), want.len(), "{len} bytes");
            assert!(got == want, "{len} bytes: chunks differ");
            assert!(got.iter().all(|(_, d)| d.len() <= 64 * 1024));
        }
    }

    #[test]
    fn cutting_a_buffer_piecewise_matches_the_stream() {
        let data: Vec<u8> = (0..500_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        let p = ChunkerParams::default();
        let whole: Vec<ChunkId> = all_chunks(&mut Chunker::new(
            &data[..],
            &p,
            ChunkIds::Plain,
            Vec::new(),
        ))
        .into_iter()
        .map(|(id, _)| id)
        .collect();
        let mut pieces = Vec::new();
        let mut at = 0;
        for end in [100_000, 300_000, 300_001, 500_000] {
            let last = end == data.len();
            let cuts = cut_buffer(&data[at..end], &p, &ChunkIds::Plain, last);
            at += cuts.last().map_or(0, |c| c.1.end);
            pieces.extend(cuts.into_iter().map(|c| c.0));
        }
        assert_eq!(at, data.len());
        assert_eq!(pieces, whole);
    }
}
