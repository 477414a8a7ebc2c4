//! Full groups compressed in the background while the writer reads on. A file backend is
//! thousands of small files: a group fills in the middle of one, and compressing it at the
//! end of that file (as a stream's own batches are, beside its next batch) left one core
//! idle while the next files were read, hashed and looked up. Groups come back in the order
//! they went in, so packs hold them in the writer's order, as before.

use std::collections::VecDeque;
use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};
use std::sync::Arc;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::store::packer::{Compressors, PlainGroup, SealedGroup};

/// Batches being compressed at once. Each is at most a chunker batch of groups (~8 MiB):
/// two keep both cores busy while bounding the plain and compressed bytes in flight.
pub(crate) const IN_FLIGHT: usize = 2;

/// A batch compressed: its sealed groups, and the emptied plain groups (for their buffers).
pub(crate) struct Sealed {
    pub(crate) sealed: Vec<SealedGroup>,
    pub(crate) emptied: Vec<PlainGroup>,
}

/// Batches of groups handed to rayon's threads, oldest first.
#[derive(Default)]
pub(crate) struct SealQueue {
    zstd: Arc<Compressors>,
    in_flight: VecDeque<Receiver<Sealed>>,
}

impl SealQueue {
    /// The compressors the writer uses for what it compresses itself.
    pub(crate) fn zstd(&self) -> &Compressors {
        &self.zstd
    }

    /// Starts compressing `groups` at `level` on rayon's threads.
    pub(crate) fn submit(&mut self, mut groups: Vec<PlainGroup>, level: i32) {
        let (tx, rx) = sync_channel(1);
        let zstd = Arc::clone(&self.zstd);
        rayon::spawn(move || {
            let sealed = seal_all(&mut groups, level, &zstd);
            // The writer may be gone (an error dropped it): nothing waits for these groups.
            let _ = tx.send(Sealed {
                sealed,
                emptied: groups,
            });
        });
        self.in_flight.push_back(rx);
    }

    /// How many batches are in flight.
    pub(crate) fn len(&self) -> usize {
        self.in_flight.len()
    }

    /// The oldest batch: when it is done, or, with `wait`, once it is. A batch whose thread
    /// ended without it (a panic) is an error: its chunks were claimed as stored.
    pub(crate) fn oldest(&mut self, wait: bool) -> Result<Option<Sealed>> {
        let Some(rx) = self.in_flight.front() else {
            return Ok(None);
        };
        let done = if wait {
            rx.recv().map_err(|_| TryRecvError::Disconnected)
        } else {
            rx.try_recv()
        };
        match done {
            Ok(s) => {
                self.in_flight.pop_front();
                Ok(Some(s))
            }
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => {
                self.in_flight.pop_front();
                Err(Error::Repository(
                    "a compression thread ended without its groups".into(),
                ))
            }
        }
    }
}

/// Compresses groups in parallel (rayon), keeping their order; leaves them empty.
pub(crate) fn seal_all(
    groups: &mut [PlainGroup],
    level: i32,
    zstd: &Compressors,
) -> Vec<SealedGroup> {
    groups.par_iter_mut().map(|g| g.seal(level, zstd)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::chunker::ChunkId;
    use crate::store::seal::ChunkIds;

    fn group(seed: u8) -> PlainGroup {
        let mut g = PlainGroup::default();
        for i in 0..50u8 {
            let data = vec![seed ^ i; 1000 + usize::from(i)];
            g.push(ChunkIds::Plain.id(&data), &data);
        }
        g
    }

    /// Batches come back in the order they went in, however their threads finish, each
    /// with its chunks in order and its plain groups emptied for reuse.
    #[test]
    fn batches_come_back_in_order() {
        let mut q = SealQueue::default();
        let batches: Vec<Vec<PlainGroup>> = (0..6u8)
            .map(|b| (0..1 + b % 3).map(|g| group(b * 16 + g)).collect())
            .collect();
        let want: Vec<Vec<Vec<ChunkId>>> = batches
            .iter()
            .map(|b| {
                b.iter()
                    .map(|g| g.chunks.iter().map(|c| c.0).collect())
                    .collect()
            })
            .collect();
        for b in batches {
            q.submit(b, 3);
        }
        assert_eq!(q.len(), 6);
        let mut got = Vec::new();
        while let Some(done) = q.oldest(true).unwrap() {
            assert!(done.emptied.iter().all(|g| g.chunks.is_empty()));
            got.push(
                done.sealed
                    .iter()
                    .map(|s| s.chunks.iter().map(|c| c.0).collect())
                    .collect::<Vec<Vec<ChunkId>>>(),
            );
        }
        assert_eq!(got, want);
        assert_eq!(q.len(), 0);
        assert!(q.oldest(false).unwrap().is_none());
    }
}
