//! `ChunkStream`: a sequence of chunks read as one `Read` stream. Knows nothing of where the
//! chunks come from (the caller's `fetch`), so the snapshot format and the reader share it.

use std::io::{self, Read};

use crate::error::{Error, Result};

/// A sequence of chunks read as one stream, one chunk in memory at a time: a member's
/// content, or a snapshot's metadata stream. A fetch error is parked in `error` (the reader of
/// the stream only sees an `io::Error`) so that the caller can return it intact, naming the
/// pack and chunk.
pub(crate) struct ChunkStream<I: Iterator, F: FnMut(I::Item) -> Result<Vec<u8>>> {
    ids: I,
    fetch: F,
    buf: Vec<u8>,
    pos: usize,
    /// Bytes produced so far.
    pub(crate) produced: u64,
    pub(crate) error: Option<Error>,
}

impl<I: Iterator, F: FnMut(I::Item) -> Result<Vec<u8>>> ChunkStream<I, F> {
    pub(crate) fn new(ids: I, fetch: F) -> ChunkStream<I, F> {
        ChunkStream {
            ids,
            fetch,
            buf: Vec::new(),
            pos: 0,
            produced: 0,
            error: None,
        }
    }
}

impl<I: Iterator, F: FnMut(I::Item) -> Result<Vec<u8>>> Read for ChunkStream<I, F> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            let Some(id) = self.ids.next() else {
                return Ok(0);
            };
            match (self.fetch)(id) {
                Ok(b) => {
                    self.buf = b;
                    self.pos = 0;
                }
                Err(e) => {
                    let msg = e.to_string();
                    self.error = Some(e);
                    return Err(io::Error::other(msg));
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        self.produced += n as u64;
        Ok(n)
    }
}
