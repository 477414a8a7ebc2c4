//! Writer threads for the files of staged trees. The thread that replays the backup reads
//! each file's content (every chunk checked as it arrives) into buffers and hands them over;
//! a writer creates the file (`O_EXCL | O_NOFOLLOW`, in a directory the replaying thread made
//! and checked), writes it and sets its owner, mode, attributes and mtime. Creating and
//! writing many files is most of a restore's time (the file system's work, in the kernel),
//! and so it overlaps with reading, decompressing and checking the next ones.
//!
//! Guarantees, as without threads: a writer only ever gets bytes already checked; nothing is
//! swapped in before `finish` saw every writer done without an error (a writer's error fails
//! the restore, whose staging directory is then removed, after the writers stopped); the
//! bytes handed over and not yet written stay under `HANDED_OVER_BYTES`, so memory does not
//! grow with the size of a file or of the restore.
//!
//! Each file goes to the writer its staged path hashes to, so a hard link, made by the
//! replaying thread, waits for that writer alone to have created its target (`wait_for`).

use std::collections::hash_map::DefaultHasher;
use std::fs::{File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::error::{Error, IoContext, Result};
use crate::member::Member;
use crate::restore::meta::{apply_meta, Owner};

/// Bytes of buffers handed to writers and not yet written back: enough to keep a few writers
/// busy with small files while a large one streams through, and a fixed part of the restore's
/// memory (spec "Memory": 256 MiB in all).
const HANDED_OVER_BYTES: usize = 32 << 20;

/// A file's content is handed over in pieces of at most this many bytes, in buffers that are
/// reused (a fresh one per piece would cost a page fault per 4 KiB).
const PIECE: usize = 1 << 20;

/// Alignment of a piece in its buffer, of a direct write's length and of its offset in the
/// file: a multiple of every logical block size in use (512, 4096).
const ALIGN: usize = 4096;

/// What a piece buffer takes: a piece and room to align it.
const PIECE_ALLOC: usize = PIECE + ALIGN;

/// Files of at least this size are written past the page cache (`O_DIRECT`), their last
/// partial block through it. Copying a depot's bytes into the page cache was most of the
/// writers' time (their CPU, on the cores that also read and check the backup), and a
/// restore of 100 GB would push everything else out of the cache. The staged tree is synced
/// as a whole before the swap either way (`StagedTree::seal`). Where the file system refuses
/// direct writes, the file is written through the cache.
const DIRECT_MIN: u64 = PIECE as u64;

/// Contents smaller than this get a buffer of their own size; larger ones a reused piece.
const SMALL: usize = 128 << 10;

/// How many writers: creating files waits on the file system's locks and the disk as much as
/// on a core, so a few more writers than cores keep the cores busy.
fn writer_count() -> usize {
    std::env::var("OPSI_BACKUP_RESTORE_WRITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()) * 2)
        .clamp(1, 16)
}

/// One piece of a file's content: the first opens the file, the last closes it.
struct Piece {
    /// The staged path, the member's path (for messages) and whether to write it directly.
    open: Option<(PathBuf, String, bool)>,
    /// The piece is `buf[at..at + len]`.
    buf: Vec<u8>,
    at: usize,
    len: usize,
    /// The bytes counted against `HANDED_OVER_BYTES` for `buf`.
    charge: usize,
    close: Option<Box<(Member, Owner)>>,
}

/// What the replaying thread and the writers share.
struct Shared {
    state: Mutex<State>,
    /// Signalled whenever a writer finished a piece or failed.
    progress: Condvar,
    xattr_failures: Arc<AtomicU64>,
}

#[derive(Default)]
struct State {
    /// Bytes of buffers handed over and not yet given back.
    handed_over: usize,
    /// Pieces each writer has been given and not yet finished.
    queued: Vec<usize>,
    /// The first error of any writer, until the replaying thread takes it.
    error: Option<Error>,
    /// True once a writer failed (its error may have been taken already).
    failed: bool,
    /// Piece buffers given back, for reuse.
    spare: Vec<Vec<u8>>,
    /// Files written (for the test-only fail point `restore-write-<n>`).
    #[cfg(feature = "crash-points")]
    written: u64,
}

/// The writer threads of one restore.
pub(crate) struct Writers {
    senders: Vec<Sender<Piece>>,
    threads: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Writers {
    /// Starts the writers; `xattr_failures` counts files whose attributes were refused.
    pub(crate) fn new(xattr_failures: Arc<AtomicU64>) -> Result<Writers> {
        let n = writer_count();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queued: vec![0; n],
                ..State::default()
            }),
            progress: Condvar::new(),
            xattr_failures,
        });
        let mut w = Writers {
            senders: Vec::new(),
            threads: Vec::new(),
            shared,
        };
        for i in 0..n {
            let (tx, rx) = channel();
            let shared = Arc::clone(&w.shared);
            let t = std::thread::Builder::new()
                .name(format!("restore-writer-{i}"))
                .spawn(move || writer(i, &rx, &shared))
                .ctx("cannot start a writer thread")?;
            w.senders.push(tx);
            w.threads.push(t);
        }
        Ok(w)
    }

    /// Reads member `m`'s content (`m.size` bytes) and hands it to a writer, which creates
    /// `path` and writes it with `m`'s metadata. A failed read is damage of the backup;
    /// an error of an earlier file's writer is returned here too, as soon as it is known.
    pub(crate) fn write_file(
        &mut self,
        path: PathBuf,
        m: &Member,
        owner: Owner,
        content: &mut dyn Read,
    ) -> Result<()> {
        let w = self.writer_of(&path);
        let direct = m.size >= DIRECT_MIN;
        let mut open = Some((path, m.path.clone(), direct));
        let mut left = m.size;
        loop {
            let len = left.min(PIECE as u64) as usize;
            let (mut buf, charge) = self.buffer(len, direct)?;
            let at = if charge == PIECE_ALLOC {
                buf.as_ptr().align_offset(ALIGN)
            } else {
                0
            };
            if let Err(e) = content.read_exact(&mut buf[at..at + len]) {
                self.lock().handed_over -= charge;
                return Err(Error::Corrupt(format!("{}: {e}", m.path)));
            }
            left -= len as u64;
            let close = (left == 0).then(|| Box::new((m.clone(), owner)));
            let last = close.is_some();
            self.send(
                w,
                Piece {
                    open: open.take(),
                    buf,
                    at,
                    len,
                    charge,
                    close,
                },
            )?;
            if last {
                return Ok(());
            }
        }
    }

    /// Waits until the writer that `path` goes to has written every file handed to it: the
    /// target of a hard link must exist before the link is made.
    pub(crate) fn wait_for(&self, path: &Path) -> Result<()> {
        let w = self.writer_of(path);
        let mut st = self.lock();
        while st.queued[w] > 0 && !st.failed {
            st = self.wait(st);
        }
        Self::failure(&mut st)
    }

    /// Waits for every writer to be done and stops them: `Ok` only when every file handed
    /// over was written whole, with its metadata.
    pub(crate) fn finish(&mut self) -> Result<()> {
        self.senders.clear();
        let mut panicked = false;
        for t in self.threads.drain(..) {
            panicked |= t.join().is_err();
        }
        let mut st = self.lock();
        Self::failure(&mut st)?;
        if panicked {
            return Err(Error::Invalid("a restore writer thread stopped".into()));
        }
        Ok(())
    }

    fn writer_of(&self, path: &Path) -> usize {
        let mut h = DefaultHasher::new();
        path.hash(&mut h);
        (h.finish() % self.senders.len().max(1) as u64) as usize
    }

    /// A buffer for `len` bytes and what it counts against `HANDED_OVER_BYTES`, once the
    /// bytes handed over leave room for it: a piece buffer (`PIECE_ALLOC`, reused) for a large
    /// piece or one of a direct write, else one of its own.
    fn buffer(&mut self, len: usize, direct: bool) -> Result<(Vec<u8>, usize)> {
        let charge = if len < SMALL && !direct {
            len
        } else {
            PIECE_ALLOC
        };
        let mut st = self.lock();
        while st.handed_over > 0 && st.handed_over + charge > HANDED_OVER_BYTES && !st.failed {
            st = self.wait(st);
        }
        Self::failure(&mut st)?;
        st.handed_over += charge;
        if charge < PIECE_ALLOC {
            return Ok((vec![0; len], charge));
        }
        let buf = st.spare.pop();
        drop(st);
        Ok((buf.unwrap_or_else(|| vec![0; PIECE_ALLOC]), charge))
    }

    fn send(&mut self, w: usize, piece: Piece) -> Result<()> {
        self.lock().queued[w] += 1;
        if self.senders[w].send(piece).is_err() {
            let mut st = self.lock();
            Self::failure(&mut st)?;
            return Err(Error::Invalid("a restore writer thread stopped".into()));
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.shared)
    }

    fn wait<'a>(&self, st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.shared
            .progress
            .wait(st)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The writers' first error, or an error saying one failed when it was reported already.
    fn failure(st: &mut State) -> Result<()> {
        if let Some(e) = st.error.take() {
            return Err(e);
        }
        if st.failed {
            return Err(Error::Invalid(
                "a restore writer failed (reported above)".into(),
            ));
        }
        Ok(())
    }
}

impl Drop for Writers {
    /// Stops the writers before anything else of the restore goes: the staging directory is
    /// removed after them, never while one still creates files in it.
    fn drop(&mut self) {
        self.senders.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared
        .state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A writer: writes the pieces it is given until the replaying thread hangs up. After an
/// error it writes nothing more, but still gives every buffer back.
fn writer(i: usize, rx: &Receiver<Piece>, shared: &Shared) {
    // A panic must not leave the replaying thread waiting for this writer forever.
    struct Guard<'a>(&'a Shared);
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                let mut st = lock(self.0);
                st.failed = true;
                st.error.get_or_insert_with(|| {
                    Error::Invalid("a restore writer thread panicked".into())
                });
                self.0.progress.notify_all();
            }
        }
    }
    let _guard = Guard(shared);
    let mut file: Option<Open> = None;
    let mut failed = false;
    for piece in rx {
        let done = if failed {
            Ok(())
        } else {
            write_piece(&mut file, &piece, shared)
        };
        let mut st = lock(shared);
        if let Err(e) = done {
            failed = true;
            file = None;
            st.failed = true;
            st.error.get_or_insert(e);
        }
        st.handed_over -= piece.charge;
        st.queued[i] -= 1;
        if piece.charge == PIECE_ALLOC {
            st.spare.push(piece.buf);
        }
        drop(st);
        shared.progress.notify_all();
    }
}

/// The file a writer is writing: its staged path, and whether it is written directly.
struct Open {
    file: File,
    path: PathBuf,
    direct: bool,
}

fn write_piece(file: &mut Option<Open>, piece: &Piece, shared: &Shared) -> Result<()> {
    if let Some((path, member, direct)) = &piece.open {
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| {
                Error::io(
                    format!("cannot create {} for member {member}", path.display()),
                    e,
                )
            })?;
        // Set after the create, not passed to it: a file system without direct writes
        // refuses the open after making the file.
        let direct = *direct && set_direct(&f, true).is_ok();
        *file = Some(Open {
            file: f,
            path: path.clone(),
            direct,
        });
    }
    let Some(open) = file.as_mut() else {
        return Err(Error::Invalid(
            "a piece of a file that was not opened".into(),
        ));
    };
    write_all(open, &piece.buf[piece.at..piece.at + piece.len])
        .path_ctx("cannot write", &open.path)?;
    if let Some(close) = &piece.close {
        let Open { file: f, path, .. } = file.take().expect("checked above");
        drop(f);
        #[cfg(feature = "crash-points")]
        {
            let n = {
                let mut st = lock(shared);
                st.written += 1;
                st.written
            };
            crate::fail_points::fail_point(&format!("restore-write-{n}"))?;
        }
        let (m, owner) = &**close;
        apply_meta(&path, m, false, *owner, &shared.xattr_failures)?;
    }
    Ok(())
}

/// Writes `data` at the file's position: directly while it is whole blocks (and the file
/// system takes them), through the page cache from the first partial block on.
fn write_all(f: &mut Open, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        if f.direct && data.len() % ALIGN != 0 {
            let whole = data.len() / ALIGN * ALIGN;
            if whole > 0 {
                write_all(f, &data[..whole])?;
                data = &data[whole..];
            }
            set_direct(&f.file, false)?;
            f.direct = false;
            continue;
        }
        match f.file.write(data) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // A file system (or device) with other alignment rules: the rest goes through
            // the page cache.
            Err(e) if f.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                set_direct(&f.file, false)?;
                f.direct = false;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Turns `O_DIRECT` on or off for an open file.
fn set_direct(f: &File, on: bool) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use std::os::fd::AsRawFd;
    let fd = f.as_raw_fd();
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    let flags = if on {
        flags | OFlag::O_DIRECT
    } else {
        flags - OFlag::O_DIRECT
    };
    fcntl(fd, FcntlArg::F_SETFL(flags))?;
    Ok(())
}
