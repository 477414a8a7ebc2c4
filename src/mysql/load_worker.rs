//! One `mysql` connection of a parallel load: a thread feeding a `mysql <database>` process
//! the jobs it is handed, in order.
//!
//! A job may have to wait for work on other connections (the rows of a table only after its
//! `CREATE TABLE` ran, its triggers only after all its rows are in), and writing into a pipe
//! says nothing about when the server ran a statement. So a job that others wait for is
//! followed by `SELECT '<mark>'`: `mysql --unbuffered` prints the mark once everything before
//! it ran, and a reader thread then opens the job's [`Latch`].
//!
//! A job of plain INSERT rows ([`Job::rows`]) goes, where the load allows it ([`LoadData`]),
//! as `LOAD DATA LOCAL INFILE` from a FIFO of ours in a transaction of its own
//! ([`load_data`](crate::mysql::load_data)): the connection asks the server how many rows it
//! took with how many warnings and whether the session reads the INSERTs' strings as the
//! conversion assumed, and commits only the exact count without warnings in such a session;
//! otherwise it rolls back and sends the job's INSERTs.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::logging;
use crate::mysql::config::MysqlConfig;
use crate::mysql::load_data;
use crate::mysql::tools::{self, StderrCollector};

/// What the load's connections share: the flag that stops them all.
#[derive(Default)]
pub struct Stop {
    raised: AtomicBool,
}

impl Stop {
    pub fn raise(&self) {
        self.raised.store(true, Ordering::SeqCst);
    }
    pub fn raised(&self) -> bool {
        self.raised.load(Ordering::SeqCst)
    }
}

/// Opens once it was counted down to zero.
pub struct Latch {
    left: Mutex<usize>,
    opened: Condvar,
}

impl Latch {
    pub fn new(count: usize) -> Arc<Latch> {
        Arc::new(Latch {
            left: Mutex::new(count),
            opened: Condvar::new(),
        })
    }

    pub fn count_down(&self) {
        let mut left = self.left.lock().unwrap_or_else(|e| e.into_inner());
        *left = left.saturating_sub(1);
        if *left == 0 {
            self.opened.notify_all();
        }
    }

    pub fn is_open(&self) -> bool {
        *self.left.lock().unwrap_or_else(|e| e.into_inner()) == 0
    }

    /// Waits until open; false when the load was stopped first.
    pub fn wait(&self, stop: &Stop) -> bool {
        let mut left = self.left.lock().unwrap_or_else(|e| e.into_inner());
        while *left > 0 {
            if stop.raised() {
                return false;
            }
            left = self
                .opened
                .wait_timeout(left, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// SQL for one connection.
pub struct Job {
    /// The table whose statements these are (for messages), quoted as in the dump.
    pub table: Arc<str>,
    /// Run only once this is open.
    pub after: Option<Arc<Latch>>,
    pub sql: Vec<u8>,
    /// Counted down once the server ran `sql`.
    pub signal: Option<Arc<Latch>>,
    /// `sql` is rows only: plain INSERTs into this table (quoted as in the dump, checked).
    pub rows: Option<Arc<str>>,
}

const MARK: &str = "opsi-backup-restore-mark";
/// Starts the line that answers how a `LOAD DATA` went: rows taken, warnings.
const ROWS_MARK: &str = "opsi-backup-restore-rows";

/// How a connection loads rows with `LOAD DATA LOCAL INFILE` (`mysql --local-infile=1`).
pub struct LoadData {
    /// This connection's FIFO, in a directory only we can enter; its path is of safe
    /// characters only.
    pub fifo: PathBuf,
    /// The dump's client character set.
    pub charset: String,
    /// Counts of what became of the batches, shared by the connections.
    pub batches: Arc<Batches>,
}

/// What became of the batches of rows sent as `LOAD DATA`.
#[derive(Debug, Default)]
pub struct Batches {
    /// Taken by the server as the dump's INSERTs would have been, and committed.
    pub loaded: AtomicU64,
    /// Rolled back (count, warnings or session differ) and sent as the dump's INSERTs.
    pub rolled_back: AtomicU64,
}

/// How a connection ended badly.
#[derive(Debug)]
pub struct Failure {
    /// The table whose statements mysql failed on, when known.
    pub table: Option<Arc<str>>,
    pub text: String,
}

/// The running connection's process id, until it is reaped: lets the load kill it.
pub type PidSlot = Arc<Mutex<Option<u32>>>;

/// Kills the connection's mysql if it still runs.
pub fn kill(slot: &PidSlot) {
    let guard = slot.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(pid) = *guard {
        // SAFETY: plain syscall; the pid is not reaped yet (the slot is emptied before the
        // wait), so it still names our child.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

/// Everything a connection thread needs.
pub struct Worker {
    pub child: Child,
    pub pid: PidSlot,
    /// Written first: mysqldump's header `SET`s (character set, checks off, SQL mode...).
    pub header: Arc<[u8]>,
    pub jobs: Receiver<Job>,
    /// Bytes handed to this connection and not yet written to mysql.
    pub queued: Arc<AtomicUsize>,
    pub stop: Arc<Stop>,
    pub cfg: MysqlConfig,
    pub load_data: Option<LoadData>,
}

impl Worker {
    /// Feeds the jobs until the sender is dropped; `Ok` once mysql ran them all and exited
    /// successfully. `Err(None)` when the load was stopped for another connection's sake.
    pub fn run(mut self) -> Result<(), Option<Failure>> {
        let stderr = StderrCollector::start(self.child.stderr.take().expect("stderr is piped"));
        let stdout = self.child.stdout.take().expect("stdout is piped");
        let stdin = self.child.stdin.take().expect("stdin is piped");
        let pending: Arc<Mutex<VecDeque<Arc<Latch>>>> = Arc::default();
        let (reply_tx, replies) = channel();
        let reader = {
            let pending = Arc::clone(&pending);
            let stop = Arc::clone(&self.stop);
            std::thread::spawn(move || read_marks(stdout, &pending, &stop, &reply_tx))
        };
        let mut feed = Feed {
            stdin: io::BufWriter::with_capacity(256 * 1024, stdin),
            line: 1,
            tables: Vec::new(),
        };
        let header = Arc::clone(&self.header);
        let fed = feed
            .write(&header, None)
            .map_err(Fed::Io)
            .and_then(|()| self.feed(&mut feed, &pending, &replies));
        // End of input: mysql finishes what it has and exits (or was killed).
        let flushed = feed
            .stdin
            .into_inner()
            .map(drop)
            .map_err(|e| e.into_error());
        let stopped = self.stop.raised();
        if stopped {
            kill(&self.pid);
        }
        // From now on nobody may signal the pid: it is reaped below.
        self.pid.lock().unwrap_or_else(|e| e.into_inner()).take();
        let status = self.child.wait();
        let _ = reader.join();
        let text = stderr.finish();
        let ok = matches!(&status, Ok(s) if s.success());
        if ok && fed.is_ok() && flushed.is_ok() && !stopped {
            return Ok(());
        }
        if ok || (stopped && !mysql_reported_error(&text)) {
            // mysql itself did not fail: stopped by the load, or our own writing failed.
            return match (fed, flushed) {
                (Err(Fed::Io(e)), _) | (_, Err(e)) if !stopped => Err(Some(Failure {
                    table: feed.tables.last().map(|t| Arc::clone(&t.1)),
                    text: format!("writing to mysql: {e}"),
                })),
                _ => Err(None),
            };
        }
        self.stop.raise();
        let how = match status {
            Ok(s) => tools::describe_status(s),
            Err(e) => format!("waiting for it: {e}"),
        };
        Err(Some(Failure {
            table: table_at(&feed.tables, &text),
            text: tools::failure_text(&text, &how, &self.cfg),
        }))
    }

    fn feed(
        &self,
        feed: &mut Feed,
        pending: &Mutex<VecDeque<Arc<Latch>>>,
        replies: &Receiver<Reply>,
    ) -> Result<(), Fed> {
        let mut text = Vec::new();
        let mut warned = false;
        while let Ok(job) = self.jobs.recv() {
            if self.stop.raised() {
                return Err(Fed::Stopped);
            }
            if let Some(after) = &job.after {
                if !after.is_open() {
                    // What was written so far must reach the server before we wait.
                    feed.stdin.flush().map_err(Fed::Io)?;
                    if !after.wait(&self.stop) {
                        return Err(Fed::Stopped);
                    }
                }
            }
            let loaded = match (&self.load_data, &job.rows) {
                (Some(how), Some(table)) => {
                    self.load_rows(feed, how, &job, table, &mut text, replies, &mut warned)?
                }
                _ => false,
            };
            if !loaded {
                feed.write(&job.sql, Some(&job.table)).map_err(Fed::Io)?;
            }
            self.queued.fetch_sub(job.sql.len(), Ordering::SeqCst);
            if let Some(signal) = job.signal {
                pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_back(signal);
                let mark = format!("SELECT '{MARK}';\n");
                feed.write(mark.as_bytes(), None).map_err(Fed::Io)?;
                // Others wait for it: send it now.
                feed.stdin.flush().map_err(Fed::Io)?;
            }
        }
        Ok(())
    }

    /// Loads the rows of `job` with `LOAD DATA`; false (nothing left behind) when they must go
    /// as the dump's INSERTs.
    #[allow(clippy::too_many_arguments)]
    fn load_rows(
        &self,
        feed: &mut Feed,
        how: &LoadData,
        job: &Job,
        table: &str,
        text: &mut Vec<u8>,
        replies: &Receiver<Reply>,
        warned: &mut bool,
    ) -> Result<bool, Fed> {
        text.clear();
        let rows = match load_data::convert(&job.sql, table.as_bytes(), text) {
            Some(n) if n > 0 => n as u64,
            _ => return Ok(false),
        };
        let fifo = how.fifo.to_str().expect("a FIFO path of safe characters");
        let sql = format!(
            "START TRANSACTION;\n{};\nSELECT '{ROWS_MARK}', ROW_COUNT(), @@warning_count, {};\n",
            load_data::statement(fifo, table, &how.charset),
            load_data::same_reading(&how.charset)
        );
        feed.write(sql.as_bytes(), Some(&job.table))
            .and_then(|()| feed.stdin.flush())
            .map_err(Fed::Io)?;
        // mysql opens the FIFO once the server asks for the file.
        let mut file = self.open_fifo(&how.fifo, replies)?;
        file.write_all(text).map_err(Fed::Io)?;
        drop(file);
        let reply = loop {
            match replies.recv_timeout(Duration::from_millis(50)) {
                Ok(reply) => break reply,
                Err(RecvTimeoutError::Timeout) if !self.stop.raised() => {}
                Err(_) => return Err(Fed::Stopped),
            }
        };
        if reply.rows == rows && reply.warnings == 0 && reply.same_reading {
            feed.write(b"COMMIT;\n", None).map_err(Fed::Io)?;
            how.batches.loaded.fetch_add(1, Ordering::Relaxed);
            return Ok(true);
        }
        feed.write(b"ROLLBACK;\n", None).map_err(Fed::Io)?;
        how.batches.rolled_back.fetch_add(1, Ordering::Relaxed);
        if !*warned {
            *warned = true;
            let why = if reply.same_reading {
                format!(
                    "read by LOAD DATA as {} rows with {} warnings instead of {rows}",
                    reply.rows, reply.warnings
                )
            } else {
                "not read as the converted rows assume (the session's SQL mode or client \
                 character set differs)"
                    .to_string()
            };
            logging::info(format!(
                "Rows of table {} {why}: rolled back, loading them as the dump's INSERTs",
                job.table
            ));
        }
        Ok(false)
    }

    /// Opens the FIFO for writing once mysql has opened it for reading; gives up when the
    /// load stops or mysql ends first (it never will open it then).
    fn open_fifo(
        &self,
        path: &std::path::Path,
        replies: &Receiver<Reply>,
    ) -> Result<std::fs::File, Fed> {
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(path)
            {
                Ok(file) => {
                    set_blocking(&file).map_err(Fed::Io)?;
                    return Ok(file);
                }
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {}
                Err(e) => return Err(Fed::Io(e)),
            }
            if self.stop.raised() {
                return Err(Fed::Stopped);
            }
            // A reply before the FIFO was read, or none ever: mysql failed or ended.
            match replies.try_recv() {
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
                _ => return Err(Fed::Stopped),
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// Clears `O_NONBLOCK`: writes wait for mysql to read.
fn set_blocking(file: &std::fs::File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// What the server answered after a `LOAD DATA`.
#[derive(Debug, PartialEq, Eq)]
struct Reply {
    /// Rows taken.
    rows: u64,
    warnings: u64,
    /// The session reads the dump's string literals as the conversion assumed
    /// ([`load_data::same_reading`]).
    same_reading: bool,
}

enum Fed {
    Io(io::Error),
    Stopped,
}

/// mysql's stdin, and which table's statements start at which input line.
struct Feed {
    stdin: io::BufWriter<std::process::ChildStdin>,
    /// The line the next byte is on (mysql counts from 1).
    line: u64,
    tables: Vec<(u64, Arc<str>)>,
}

impl Feed {
    fn write(&mut self, sql: &[u8], table: Option<&Arc<str>>) -> io::Result<()> {
        if let Some(t) = table {
            if self.tables.last().is_none_or(|(_, last)| last != t) {
                self.tables.push((self.line, Arc::clone(t)));
            }
        }
        self.stdin.write_all(sql)?;
        self.line += memchr::memchr_iter(b'\n', sql).count() as u64;
        Ok(())
    }
}

/// Whether mysql printed an error of its own (`ERROR 1064 (42000) at line 3: …`).
fn mysql_reported_error(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("ERROR "))
}

/// The table whose statements contain the line of mysql's `ERROR … at line N` message.
fn table_at(tables: &[(u64, Arc<str>)], text: &str) -> Option<Arc<str>> {
    let line: u64 = text.lines().find_map(|l| {
        let rest = &l[l.find(" at line ")? + " at line ".len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    })?;
    tables
        .iter()
        .rev()
        .find(|(start, _)| *start <= line)
        .map(|(_, t)| Arc::clone(t))
}

/// Opens the latch of each mark mysql prints, in order. mysql ending with marks outstanding
/// means it failed: the load is stopped, so nobody waits for them forever.
fn read_marks(
    stdout: std::process::ChildStdout,
    pending: &Mutex<VecDeque<Arc<Latch>>>,
    stop: &Stop,
    replies: &Sender<Reply>,
) {
    let mut lines = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if let Some(reply) = rows_reply(line.trim_ascii_end()) {
            let _ = replies.send(reply);
        } else if line.trim_ascii_end() == MARK.as_bytes() {
            let next = pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
            if let Some(latch) = next {
                latch.count_down();
            }
        }
    }
    if !pending.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
        stop.raise();
    }
}

/// The answer line of a `LOAD DATA`: `<ROWS_MARK>\t<rows>\t<warnings>\t<0|1>`.
fn rows_reply(line: &[u8]) -> Option<Reply> {
    let text = std::str::from_utf8(line).ok()?;
    let mut fields = text.split('\t');
    if fields.next()? != ROWS_MARK {
        return None;
    }
    let rows = fields.next()?.parse().ok()?;
    let warnings = fields.next()?.parse().ok()?;
    let same_reading = match fields.next()? {
        "1" => true,
        "0" => false,
        _ => return None,
    };
    Some(Reply {
        rows,
        warnings,
        same_reading,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_line_names_the_table() {
        let tables = vec![(1, Arc::from("`a`")), (40, Arc::from("`b`"))];
        let text = "ERROR 1064 (42000) at line 41: You have an error";
        assert_eq!(table_at(&tables, text).as_deref(), Some("`b`"));
        let text = "ERROR 1064 (42000) at line 39: You have an error";
        assert_eq!(table_at(&tables, text).as_deref(), Some("`a`"));
        assert_eq!(table_at(&tables, "killed"), None);
        assert!(mysql_reported_error("ERROR 1146 (42S02) at line 3: x"));
    }

    #[test]
    fn load_data_answers_are_read() {
        let reply = |rows, warnings, same_reading| {
            Some(Reply {
                rows,
                warnings,
                same_reading,
            })
        };
        assert_eq!(
            rows_reply(b"opsi-backup-restore-rows\t120\t0\t1"),
            reply(120, 0, true)
        );
        assert_eq!(
            rows_reply(b"opsi-backup-restore-rows\t120\t0\t0"),
            reply(120, 0, false)
        );
        assert_eq!(rows_reply(b"opsi-backup-restore-rows\t120\t0"), None);
        assert_eq!(rows_reply(b"opsi-backup-restore-rows\t-1\t0\t1"), None);
        assert_eq!(rows_reply(b"opsi-backup-restore-mark"), None);
        assert_eq!(rows_reply(b"other\t1\t2"), None);
    }

    #[test]
    fn latch_opens_after_its_count_and_stops() {
        let stop = Stop::default();
        let l = Latch::new(2);
        l.count_down();
        assert!(!l.is_open());
        l.count_down();
        assert!(l.wait(&stop));
        let l = Latch::new(1);
        stop.raise();
        assert!(!l.wait(&stop));
    }
}
