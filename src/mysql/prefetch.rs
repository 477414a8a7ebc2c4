//! A dump started ahead of its turn. `create` backs up the file backend before the MySQL dump
//! (the original's order, which the archive keeps), so waiting for mysqldump at its turn leaves
//! a core idle while mysqldump and the server work. Instead the dump starts with the backup:
//! a thread copies mysqldump's output into an unlinked spool file (in the destination's file
//! system, never a RAM-backed /tmp; nothing is left behind by a crash), and at its turn the
//! dump is read back from the spool as it grows. Memory stays flat; what the backup holds and
//! in which order does not change.
//!
//! Failures keep `dump.rs`'s rule: a failed dump never reads as a complete one. The reader
//! returns an error instead of end-of-file, and `add` turns it into the mysqldump error.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::error::{Error, IoContext, Result};
use crate::member::Member;
use crate::mysql::dump::{self, DumpOptions};
use crate::mysql::MysqlConfig;
use crate::sink::MemberSink;

/// How the copying thread ended.
enum End {
    /// mysqldump succeeded and all its output is in the spool.
    Done,
    /// mysqldump failed; its messages.
    Failed(String),
    /// The spool could not be written (disk full...).
    Spool(io::Error),
    Cancelled,
}

#[derive(Default)]
struct Progress {
    written: u64,
    end: Option<End>,
}

#[derive(Default)]
struct Shared {
    progress: Mutex<Progress>,
    grown: Condvar,
    cancel: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running (or finished) dump of one backend, readable from its start.
pub struct Prefetch {
    name: String,
    /// A pidfd of mysqldump (Linux >= 5.3), to kill it from here without a pid-reuse race;
    /// `None` where the kernel has none (then only the cancel flag stops the dump).
    pidfd: Option<OwnedFd>,
    shared: Arc<Shared>,
    spool: File,
    pos: u64,
    worker: Option<JoinHandle<()>>,
}

impl Prefetch {
    /// Starts mysqldump for backend `name`, spooling into `dir`.
    pub fn start(
        cfg: &MysqlConfig,
        opts: &DumpOptions,
        name: &str,
        dir: &Path,
    ) -> Result<Prefetch> {
        let spool =
            tempfile::tempfile_in(dir).path_ctx("cannot create the dump's spool file in", dir)?;
        let mut out = spool.try_clone().ctx("opening the dump's spool file")?;
        let (mut stream, defaults) = dump::spawn(cfg, opts)?;
        // Opened before the copying thread exists: mysqldump cannot have been reaped yet.
        let pidfd = pidfd_open(stream.pid());
        let shared = Arc::new(Shared::default());
        let sh = shared.clone();
        let worker = std::thread::spawn(move || {
            let _defaults = defaults; // mysqldump may read it late; removed when the dump ends
            let mut buf = vec![0u8; 1 << 20];
            let end = loop {
                if sh.cancel.load(Ordering::Relaxed) {
                    stream.stop();
                    break End::Cancelled;
                }
                match stream.read(&mut buf) {
                    Ok(0) => break End::Done,
                    Ok(n) => {
                        if let Err(e) = out.write_all(&buf[..n]) {
                            stream.stop();
                            break End::Spool(e);
                        }
                        sh.lock().written += n as u64;
                        sh.grown.notify_all();
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        break End::Failed(
                            stream
                                .failure()
                                .map_or_else(|| e.to_string(), str::to_string),
                        )
                    }
                }
            };
            sh.lock().end = Some(end);
            sh.grown.notify_all();
        });
        Ok(Prefetch {
            name: name.to_string(),
            pidfd,
            shared,
            spool,
            pos: 0,
            worker: Some(worker),
        })
    }

    /// Adds the dump to `sink` as `member` and returns its size: with the size in the header
    /// when mysqldump has already finished, else as it grows (`add_unsized`).
    pub fn add(mut self, mut member: Member, sink: &mut dyn MemberSink) -> Result<u64> {
        let finished = {
            let p = self.shared.lock();
            matches!(p.end, Some(End::Done)).then_some(p.written)
        };
        let added = match finished {
            Some(size) => {
                member.size = size;
                sink.add(&member, &mut self).map(|()| size)
            }
            None => sink.add_unsized(member, &mut self),
        };
        let p = self.shared.lock();
        match (added, &p.end) {
            (Ok(size), Some(End::Done)) if self.pos == p.written => Ok(size),
            (_, Some(End::Failed(text))) => Err(dump::failed(&self.name, text)),
            (_, Some(End::Spool(e))) => Err(Error::io(
                format!(
                    "writing the spool file of the dump of backend {}",
                    self.name
                ),
                io::Error::new(e.kind(), e.to_string()),
            )),
            (Ok(_), _) => Err(dump::not_read_to_end(&self.name)),
            (Err(e), _) => Err(e),
        }
    }
}

impl Read for Prefetch {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut p = self.shared.lock();
        loop {
            if self.pos < p.written {
                let n = buf.len().min((p.written - self.pos) as usize);
                drop(p);
                // Positioned reads: the writer's file offset is its own.
                let n = self.spool.read_at(&mut buf[..n], self.pos)?;
                self.pos += n as u64;
                return Ok(n);
            }
            match p.end {
                Some(End::Done) => return Ok(0),
                Some(_) => return Err(io::Error::other("mysqldump failed (see the MySQL error)")),
                None => {
                    p = self.shared.grown.wait(p).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }
}

impl Drop for Prefetch {
    /// Stops a dump nobody will read (the backup failed before its turn) and reaps mysqldump.
    fn drop(&mut self) {
        self.shared.cancel.store(true, Ordering::Relaxed);
        // The copying thread sees the flag after its next read; a mysqldump that produces
        // nothing (waiting for a table lock) is killed so that the read returns.
        if self.shared.lock().end.is_none() {
            if let Some(fd) = &self.pidfd {
                // SAFETY: pidfd_send_signal with a pidfd we own; a process already gone
                // makes it fail with ESRCH, never signal another process.
                unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        fd.as_raw_fd(),
                        libc::SIGKILL,
                        std::ptr::null::<libc::siginfo_t>(),
                        0,
                    );
                }
            }
        }
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// A pidfd for `pid`, or `None` when the kernel does not offer them.
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new file descriptor we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a non-negative return is a fresh descriptor nobody else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
