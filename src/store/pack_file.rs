//! The temporary file of a pack being written, filled on a thread of its own that also hashes
//! it (the pack's name). Copying the bytes into the page cache is the largest single cost of a
//! first backup of incompressible bulk data (~30% of its CPU time on one core, measured with
//! `benches/depot_bench.rs`); on this thread it overlaps the cutting, hashing and compressing
//! of the next groups instead of following it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use crate::error::{Error, IoContext, Result};

/// Buffers in flight to the thread: with groups of 4 MiB, at most ~8 MiB waits to be written.
const IN_FLIGHT: usize = 2;

/// What the thread gives back: the file, flushed, and the BLAKE3 of everything written.
type Written = Result<(File, blake3::Hash)>;

pub(crate) struct PackFile {
    path: PathBuf,
    tx: Option<SyncSender<Vec<u8>>>,
    thread: Option<JoinHandle<Written>>,
}

impl PackFile {
    /// Starts writing `file` (at `path`, for messages) on a new thread.
    pub(crate) fn start(path: PathBuf, file: File) -> PackFile {
        let (tx, rx) = sync_channel::<Vec<u8>>(IN_FLIGHT);
        let shown = path.clone();
        let thread = std::thread::Builder::new()
            .name("pack-file".into())
            .spawn(move || {
                let mut out = BufWriter::with_capacity(1 << 20, file);
                let mut hasher = blake3::Hasher::new();
                let mut failed = None;
                // Keeps receiving after a failure, so that the sender never blocks on a full
                // channel; the first error is the answer.
                for buf in rx {
                    if failed.is_none() {
                        match out.write_all(&buf) {
                            Ok(()) => {
                                hasher.update(&buf);
                            }
                            Err(e) => failed = Some(e),
                        }
                    }
                }
                if let Some(e) = failed {
                    return Err(e).path_ctx("writing", &shown);
                }
                let file = out
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .path_ctx("writing", &shown)?;
                Ok((file, hasher.finalize()))
            });
        let (tx, thread) = match thread {
            Ok(t) => (Some(tx), Some(t)),
            // No thread to be had: `write` reports it.
            Err(_) => (None, None),
        };
        PackFile { path, tx, thread }
    }

    /// Queues `buf` to be written after what was queued before.
    pub(crate) fn write(&mut self, buf: Vec<u8>) -> Result<()> {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(buf).is_ok());
        if sent {
            return Ok(());
        }
        // The thread is gone: its answer says why.
        match self.join() {
            Err(e) => Err(e),
            Ok(_) => Err(self.lost()),
        }
    }

    /// Waits until everything queued is written: the file and the BLAKE3 of its bytes.
    pub(crate) fn finish(mut self) -> Result<(File, blake3::Hash)> {
        self.join()
    }

    fn join(&mut self) -> Written {
        self.tx = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(written)) => written,
            Some(Err(_)) | None => Err(self.lost()),
        }
    }

    fn lost(&self) -> Error {
        Error::io(
            format!("writing {}", self.path.display()),
            std::io::Error::other("the thread writing the pack file ended early"),
        )
    }
}

impl Drop for PackFile {
    /// An abandoned pack: the thread finishes what was queued and closes the file.
    fn drop(&mut self) {
        let _ = self.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn writes_in_order_and_hashes_what_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        let mut w = PackFile::start(path.clone(), File::create(&path).unwrap());
        let parts: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 100_000 + i as usize]).collect();
        for p in &parts {
            w.write(p.clone()).unwrap();
        }
        let (mut file, hash) = w.finish().unwrap();
        let all = parts.concat();
        let mut back = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, all);
        assert_eq!(hash, blake3::hash(&all));
        file.flush().unwrap();
    }

    #[test]
    fn a_failed_write_is_the_answer_of_finish() {
        // A file opened read-only: every write fails.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        std::fs::write(&path, b"").unwrap();
        let mut w = PackFile::start(path.clone(), File::open(&path).unwrap());
        for _ in 0..10 {
            // Queued before the thread has failed, or refused after: never blocks.
            let _ = w.write(vec![1; 2 << 20]);
        }
        let err = w.finish().unwrap_err().to_string();
        assert!(err.contains("writing"), "{err}");
    }
}
