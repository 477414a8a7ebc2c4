//! Loading a mysqldump dump over several `mysql` connections at once.
//!
//! The dump is read once, as a stream, and cut into statements ([`Splitter`]). Its header
//! `SET`s (character set, time zone, `FOREIGN_KEY_CHECKS=0`, `UNIQUE_CHECKS=0`, `SQL_MODE`
//! with `NO_AUTO_VALUE_ON_ZERO`) are replayed at the start of every connection. Per table
//! section ([`dump_shape`]): its `DROP`/`CREATE` go to one connection; its `INSERT`s, in
//! batches of about [`BATCH`], to whichever connection has the least queued, once the table
//! exists; its triggers (and `ENABLE KEYS`) once all its rows are in. `LOCK TABLES` is left
//! out: it would keep the other connections out of the table; the rows are the same. The
//! trailer (final views, routines, events, footer) runs after all tables, on one connection.
//! Where `LOAD DATA LOCAL INFILE` works, a connection loads a batch of rows with it (see
//! [`load_worker`]).
//!
//! Memory is bounded: each connection is handed at most [`QUEUE`] jobs of about one batch,
//! the `CREATE`/trigger part of a table is held up to [`MAX_DDL`], one statement up to
//! [`MAX_STATEMENT`].
//!
//! Whatever does not have this shape (not a mysqldump dump, an unknown statement, a
//! `DELIMITER` left changed between tables, an oversized statement) is loaded serially from
//! there on: the connections finish what they were given, then one connection gets the header
//! and the rest of the dump as it is. A failed statement stops every connection; the error
//! names the table and says what is left.

use std::io::{self, Read};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};
use crate::logging;
use crate::mysql::config::MysqlConfig;
use crate::mysql::defaults_file::DefaultsFile;
use crate::mysql::dump_shape::{self, Kind, Section};
use crate::mysql::load_data;
use crate::mysql::load_worker::{
    self, Batches, Failure, Job, Latch, LoadData, PidSlot, Stop, Worker,
};
use crate::mysql::statements::{Splitter, Statement, TOO_LONG};
use crate::mysql::tools;

/// INSERTs are handed out in batches of about this size.
pub const BATCH: usize = 1 << 20;
/// Jobs waiting per connection.
pub const QUEUE: usize = 4;
/// The largest `CREATE`/trigger part of one table held before it is handed out.
pub const MAX_DDL: usize = 16 << 20;
/// The largest statement split; a longer one (mysqldump writes ~1 MB) is loaded serially.
pub const MAX_STATEMENT: usize = 64 << 20;
/// The largest header replayed on every connection.
const MAX_HEADER: usize = 64 << 10;

/// How to start one `mysql` connection and load a stream serially.
pub struct Client<'a> {
    pub program: &'a Path,
    pub defaults: &'a DefaultsFile,
    pub cfg: &'a MysqlConfig,
    /// Loads a stream on one connection (the serial restore).
    pub serial: &'a dyn Fn(&mut dyn Read) -> Result<()>,
    /// A private directory (its path of safe characters) for the connections' FIFOs, if
    /// `LOAD DATA LOCAL INFILE` is found to work: asked once the dump is seen to load in
    /// parallel.
    pub local_infile: &'a dyn Fn() -> Option<tempfile::TempDir>,
}

/// What a load did with the dump's rows.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    /// Batches of rows the server took as `LOAD DATA`, its count of them checked.
    pub load_data: u64,
    /// Batches whose `LOAD DATA` was rolled back and that went as the dump's INSERTs.
    pub rolled_back: u64,
}

/// Loads `dump` into `client.cfg.database` (already empty) over `connections` connections.
pub fn load(client: &Client<'_>, dump: &mut dyn Read, connections: usize) -> Result<Loaded> {
    let mut sp = Splitter::new(dump, MAX_STATEMENT);
    let mut header = Vec::new();
    let first = loop {
        let st = match next(&mut sp) {
            Ok(Some(st)) => st,
            Ok(None) => return (client.serial)(&mut &header[..]).map(|()| Loaded::default()),
            Err(Next::TooLong) => return serial_rest(client, &header, &[], sp),
            Err(Next::Read(e)) => return Err(read_error(e)),
        };
        if header.is_empty() && !dump_shape::is_dump_start(&st) {
            logging::info(
                "The MySQL dump does not start like mysqldump's output: loading it serially",
            );
            return serial_rest(client, &[], &st.text, sp);
        }
        if dump_shape::section(&st).is_some() {
            break st;
        }
        let kind = dump_shape::kind(&st);
        // A global setting (MySQL's `SET @@GLOBAL.GTID_PURGED`) must not run once per
        // connection.
        let global = st
            .body()
            .to_ascii_uppercase()
            .windows(8)
            .any(|w| w == b"@@GLOBAL");
        if !matches!(kind, Kind::Set | Kind::Empty)
            || global
            || header.len() + st.text.len() > MAX_HEADER
        {
            logging::warning(format!(
                "The MySQL dump's header holds a statement other than a session SET ({}): \
                 loading it serially",
                excerpt(st.body())
            ));
            return serial_rest(client, &header, &st.text, sp);
        }
        header.extend_from_slice(&st.text);
    };
    let charset = load_data::charset(&header);
    let fifo_dir = charset.as_ref().and_then(|_| (client.local_infile)());
    let fifos = fifo_dir
        .as_ref()
        .and_then(|dir| make_fifos(dir.path(), connections));
    logging::info(format!(
        "Loading the MySQL dump over {connections} connections{}",
        if fifos.is_some() {
            ", rows with LOAD DATA"
        } else {
            ""
        }
    ));
    let header: Arc<[u8]> = header.into();
    let stop = Arc::new(Stop::default());
    let batches = Arc::new(Batches::default());
    let (end, failures, tables) = std::thread::scope(|scope| -> Result<_> {
        let mut load = Load {
            conns: Vec::new(),
            stop: Arc::clone(&stop),
            tables: Vec::new(),
            group: None,
            default_delimiter: true,
            turn: 0,
            rows: fifos.is_some(),
        };
        let mut threads = Vec::new();
        for i in 0..connections {
            let (tx, rx) = sync_channel(QUEUE);
            let queued = Arc::new(AtomicUsize::new(0));
            let load_data = fifos.as_ref().map(|f| LoadData {
                fifo: f[i].clone(),
                charset: charset.clone().expect("a charset with the FIFOs"),
                batches: Arc::clone(&batches),
            });
            let child = spawn(client, load_data.is_some())?;
            let pid: PidSlot = Arc::new(std::sync::Mutex::new(Some(child.id())));
            let worker = Worker {
                child,
                pid: Arc::clone(&pid),
                header: Arc::clone(&header),
                jobs: rx,
                queued: Arc::clone(&queued),
                stop: Arc::clone(&stop),
                cfg: client.cfg.clone(),
                load_data,
            };
            threads.push(scope.spawn(move || worker.run()));
            load.conns.push(Conn { tx, queued, pid });
        }
        let end = load.run(first, &mut sp);
        if end.is_err() || stop.raised() {
            stop.raise();
            for c in &load.conns {
                load_worker::kill(&c.pid);
            }
        }
        let mut tables = std::mem::take(&mut load.tables);
        if let Some(g) = &load.group {
            // The section being read when the load ended: not complete (if it failed).
            tables.push((Arc::clone(&g.name), Latch::new(1)));
        }
        drop(load); // closes the job queues: the connections finish
        let failures: Vec<Failure> = threads
            .into_iter()
            .filter_map(|t| match t.join() {
                Ok(Ok(())) | Ok(Err(None)) => None,
                Ok(Err(Some(f))) => Some(f),
                Err(_) => Some(Failure {
                    table: None,
                    text: "a connection's thread panicked".into(),
                }),
            })
            .collect();
        Ok((end, failures, tables))
    })?;
    match end {
        Err(Abort::Read(e)) => Err(Error::io(
            format!(
                "reading the MySQL dump to restore. {}",
                left_state(client.cfg, &tables)
            ),
            e,
        )),
        _ if !failures.is_empty() || stop.raised() => Err(failed(client.cfg, failures, &tables)),
        Err(Abort::Stopped) => Err(failed(client.cfg, failures, &tables)),
        Ok(End::Done) => Ok(()),
        Ok(End::Serial(replay)) => serial_rest(client, &header, &replay, sp)
            .map(|_| ())
            .map_err(|e| after_tables(e, client.cfg, &tables)),
    }?;
    let loaded = Loaded {
        load_data: batches.loaded.load(Ordering::Relaxed),
        rolled_back: batches.rolled_back.load(Ordering::Relaxed),
    };
    if fifos.is_some() {
        logging::info(format!(
            "Rows: {} batches as LOAD DATA, {} rolled back and sent as the dump's INSERTs",
            loaded.load_data, loaded.rolled_back
        ));
    }
    Ok(loaded)
}

/// Loads `header`, `replay` and the rest of the split stream on one connection.
fn serial_rest<R: Read>(
    client: &Client<'_>,
    header: &[u8],
    replay: &[u8],
    sp: Splitter<R>,
) -> Result<Loaded> {
    let (buf, mut rest) = sp.into_parts();
    let mut stream = header.chain(replay).chain(&buf[..]).chain(&mut rest);
    (client.serial)(&mut stream).map(|()| Loaded::default())
}

/// One FIFO per connection in `dir`; `None` (rows go as INSERTs) if one cannot be made.
fn make_fifos(dir: &Path, connections: usize) -> Option<Vec<std::path::PathBuf>> {
    (0..connections)
        .map(|i| {
            let path = dir.join(format!("rows-{i}"));
            let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
            // SAFETY: plain syscall on a NUL-terminated path.
            let made = unsafe { libc::mkfifo(c.as_ptr(), 0o600) } == 0;
            if !made {
                logging::info(format!(
                    "Cannot make a FIFO for LOAD DATA ({}): rows go as INSERTs",
                    io::Error::last_os_error()
                ));
            }
            made.then_some(path)
        })
        .collect()
}

/// Starts one connection: `mysql --unbuffered` prints our marks as soon as it reaches them.
fn spawn(client: &Client<'_>, local_infile: bool) -> Result<std::process::Child> {
    let database = tools::database_arg(&client.cfg.database)?;
    let mut cmd = tools::command(client.program, client.defaults, client.cfg);
    if local_infile {
        cmd.arg("--local-infile=1");
    }
    cmd.args(["--batch", "--skip-column-names", "--unbuffered"])
        .arg(database)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn()
        .ctx(format!("starting {}", client.program.display()))
}

enum Next {
    TooLong,
    Read(io::Error),
}

fn next<R: Read>(sp: &mut Splitter<R>) -> std::result::Result<Option<Statement>, Next> {
    sp.next_statement().map_err(|e| {
        if e.kind() == io::ErrorKind::Other && e.to_string() == TOO_LONG {
            logging::warning(
                "The MySQL dump holds a very long statement: loading the rest serially",
            );
            Next::TooLong
        } else {
            Next::Read(e)
        }
    })
}

fn read_error(e: io::Error) -> Error {
    Error::io("reading the MySQL dump to restore", e)
}

/// The first bytes of a statement, for messages.
fn excerpt(body: &[u8]) -> String {
    let end = body.len().min(60);
    let text = String::from_utf8_lossy(&body[..end]).replace(['\n', '\r'], " ");
    if end < body.len() {
        format!("{text}…")
    } else {
        text
    }
}

/// How the parallel part ended.
enum End {
    /// The whole dump is loaded.
    Done,
    /// The rest goes serially, these bytes first.
    Serial(Vec<u8>),
}

enum Abort {
    /// A connection failed, or one is gone: see the failures.
    Stopped,
    Read(io::Error),
}

struct Conn {
    tx: SyncSender<Job>,
    queued: Arc<AtomicUsize>,
    pid: PidSlot,
}

/// A table (or view stand-in) section.
struct Group {
    name: Arc<str>,
    /// The name as the dump quotes it, for matching `INSERT INTO`.
    quoted: Vec<u8>,
    phase: Phase,
    /// `DROP`/`CREATE`/`SET`s before the rows: one job.
    pre: Vec<u8>,
    /// Open once `pre` ran; `None` while `pre` is not handed out.
    created: Option<Arc<Latch>>,
    /// Open once the first batch of rows ran; the other batches wait for it (see
    /// [`Load::hand_out_batch`]). `None` until that batch is handed out.
    first_rows: Option<Arc<Latch>>,
    /// INSERTs not handed out yet.
    batch: Vec<u8>,
    /// Triggers and what goes with them, after the rows.
    post: Vec<u8>,
    /// The statements as read since the last job that covers them (but the rows, which are
    /// in `batch`): replayed if the rest is loaded serially.
    raw: Vec<u8>,
    /// The connections that got rows of this table.
    fed: Vec<bool>,
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Phase {
    Pre,
    Data,
    Post,
}

struct Load {
    conns: Vec<Conn>,
    stop: Arc<Stop>,
    /// The sections handed out, each with the latch that opens once all its statements ran.
    tables: Vec<(Arc<str>, Arc<Latch>)>,
    group: Option<Group>,
    /// The delimiter is `;` (a section must end so, as the connections share nothing else).
    default_delimiter: bool,
    /// Where the search for the least busy connection starts, turning.
    turn: usize,
    /// Rows may go as `LOAD DATA`.
    rows: bool,
}

impl Load {
    fn run<R: Read>(
        &mut self,
        first: Statement,
        sp: &mut Splitter<R>,
    ) -> std::result::Result<End, Abort> {
        let mut st = first;
        loop {
            if st.delimiter_command {
                self.default_delimiter = sp.delimiter() == b";";
            }
            let section = dump_shape::section(&st);
            let trailer = matches!(section, Some(Section::Trailer)) || dump_shape::is_footer(&st);
            if section.is_some() || trailer {
                if !self.default_delimiter {
                    return self.go_serial(st, "a DELIMITER is left changed between tables");
                }
                self.finish_group()?;
            }
            if trailer {
                return Ok(End::Serial(st.text));
            }
            if let Some(Section::Table(quoted)) = section {
                let name = String::from_utf8_lossy(&quoted).into_owned();
                self.group = Some(Group {
                    name: name.into(),
                    quoted,
                    phase: Phase::Pre,
                    pre: Vec::new(),
                    created: None,
                    first_rows: None,
                    batch: Vec::new(),
                    post: Vec::new(),
                    raw: Vec::new(),
                    fed: vec![false; self.conns.len()],
                });
            }
            if !self.add(&st)? {
                let why = format!("unexpected statement {}", excerpt(st.body()));
                return self.go_serial(st, &why);
            }
            st = match next(sp) {
                Ok(Some(st)) => st,
                Ok(None) => {
                    self.finish_group()?;
                    return Ok(End::Done);
                }
                Err(Next::TooLong) => {
                    return self.go_serial(
                        Statement {
                            text: Vec::new(),
                            body: 0,
                            delimiter_command: false,
                        },
                        "a very long statement",
                    )
                }
                Err(Next::Read(e)) => return Err(Abort::Read(e)),
            };
        }
    }

    /// Ends the parallel part: what the current section did not hand out yet, then `st`, then
    /// the rest of the dump go serially.
    fn go_serial(&mut self, st: Statement, why: &str) -> std::result::Result<End, Abort> {
        let name = self.group.as_ref().map(|g| g.name.to_string());
        logging::warning(format!(
            "The MySQL dump is not of the expected shape ({why}{}): loading the rest of it serially",
            name.map(|n| format!(", in the section of table {n}"))
                .unwrap_or_default()
        ));
        let mut replay = match self.group.take() {
            Some(g) if g.phase == Phase::Data => g.batch,
            Some(g) => g.raw,
            None => Vec::new(),
        };
        replay.extend_from_slice(&st.text);
        Ok(End::Serial(replay))
    }

    /// Takes `st` into the current section; false if it does not belong there.
    fn add(&mut self, st: &Statement) -> std::result::Result<bool, Abort> {
        let kind = dump_shape::kind(st);
        let Some(g) = self.group.as_mut() else {
            // Between the header and the first section only comments can come.
            return Ok(kind == Kind::Empty);
        };
        match (&kind, g.phase) {
            (Kind::Set | Kind::Ddl | Kind::DisableKeys | Kind::Empty, Phase::Pre) => {
                g.pre.extend_from_slice(&st.text);
            }
            (Kind::Lock, Phase::Pre) => {}
            (Kind::Insert(table), Phase::Pre | Phase::Data) if *table == g.quoted => {
                if g.phase == Phase::Pre {
                    self.hand_out_pre()?;
                }
                let g = self.group.as_mut().expect("a section");
                // (`raw` stays empty while the rows come: `batch` is what a replay needs.)
                g.batch.extend_from_slice(&st.text);
                if g.batch.len() >= BATCH {
                    self.hand_out_batch()?;
                }
                return Ok(true);
            }
            (Kind::Unlock | Kind::EnableKeys, Phase::Pre | Phase::Data) => {
                self.hand_out_batch()?;
                let g = self.group.as_mut().expect("a section");
                g.phase = Phase::Post;
                if kind == Kind::EnableKeys {
                    g.post.extend_from_slice(&st.text);
                }
            }
            (
                Kind::Set | Kind::Ddl | Kind::EnableKeys | Kind::Delimiter | Kind::Empty,
                Phase::Post,
            ) => {
                g.post.extend_from_slice(&st.text);
            }
            (Kind::Unlock, Phase::Post) => {}
            _ => return Ok(false),
        }
        let g = self.group.as_mut().expect("a section");
        g.raw.extend_from_slice(&st.text);
        Ok(g.pre.len() <= MAX_DDL && g.post.len() <= MAX_DDL)
    }

    /// Hands the table's `CREATE` part to a connection; its rows wait for it.
    fn hand_out_pre(&mut self) -> std::result::Result<(), Abort> {
        let g = self.group.as_mut().expect("a section");
        let created = Latch::new(1);
        g.created = Some(Arc::clone(&created));
        g.phase = Phase::Data;
        g.raw.clear();
        let job = Job {
            table: Arc::clone(&g.name),
            after: None,
            sql: std::mem::take(&mut g.pre),
            signal: Some(created),
            rows: None,
        };
        let to = self.least_busy();
        self.send(to, job)
    }

    /// Hands the rows gathered to the least busy connection. The first batch of a table runs
    /// alone, the others once it ran: MariaDB inserts into an empty table in bulk under a
    /// table lock, and `LOAD DATA` transactions of other connections starting on the same
    /// empty table deadlocked with it (ERROR 1213, seen with four connections on one table);
    /// and the table's first rows go in first, as in the serial load (a duplicate key then
    /// fails the same row).
    fn hand_out_batch(&mut self) -> std::result::Result<(), Abort> {
        let to = self.least_busy();
        let g = self.group.as_mut().expect("a section");
        if g.batch.is_empty() {
            return Ok(());
        }
        g.fed[to] = true;
        g.raw.clear();
        let (after, signal) = match &g.first_rows {
            Some(first) => (Some(Arc::clone(first)), None),
            None => {
                let first = Latch::new(1);
                g.first_rows = Some(Arc::clone(&first));
                (g.created.clone(), Some(first))
            }
        };
        let job = Job {
            table: Arc::clone(&g.name),
            after,
            sql: std::mem::take(&mut g.batch),
            signal,
            rows: (self.rows && load_data::is_quoted_identifier(g.name.as_bytes()))
                .then(|| Arc::clone(&g.name)),
        };
        self.send(to, job)
    }

    /// Hands out the rest of the section: after all its rows, its triggers.
    fn finish_group(&mut self) -> std::result::Result<(), Abort> {
        if self.group.is_none() {
            return Ok(());
        }
        self.hand_out_batch()?;
        let g = self.group.take().expect("a section");
        let done = Latch::new(1);
        self.tables.push((Arc::clone(&g.name), Arc::clone(&done)));
        let mut job = Job {
            table: Arc::clone(&g.name),
            after: None,
            sql: g.post,
            signal: Some(done),
            rows: None,
        };
        if let Some(created) = g.created {
            let fed: Vec<usize> = (0..g.fed.len()).filter(|&i| g.fed[i]).collect();
            let rows_in = Latch::new(fed.len());
            for &i in &fed {
                let fence = Job {
                    table: Arc::clone(&g.name),
                    after: None,
                    sql: Vec::new(),
                    signal: Some(Arc::clone(&rows_in)),
                    rows: None,
                };
                self.send(i, fence)?;
            }
            // Also after the CREATE, should no connection have got rows.
            job.after = Some(if fed.is_empty() { created } else { rows_in });
        } else {
            // No rows: the whole section on one connection, in order.
            let mut sql = g.pre;
            sql.extend_from_slice(&job.sql);
            job.sql = sql;
        }
        let to = self.least_busy();
        self.send(to, job)
    }

    /// The connection with the fewest bytes waiting.
    fn least_busy(&mut self) -> usize {
        let n = self.conns.len();
        self.turn = (self.turn + 1) % n;
        (0..n)
            .map(|i| (self.turn + i) % n)
            .min_by_key(|&i| self.conns[i].queued.load(Ordering::SeqCst))
            .expect("at least one connection")
    }

    fn send(&mut self, to: usize, job: Job) -> std::result::Result<(), Abort> {
        if self.stop.raised() {
            return Err(Abort::Stopped);
        }
        let conn = &self.conns[to];
        conn.queued.fetch_add(job.sql.len(), Ordering::SeqCst);
        conn.tx.send(job).map_err(|_| Abort::Stopped)
    }
}

/// The error of a failed parallel load: which table, and what state the database is in.
fn failed(cfg: &MysqlConfig, failures: Vec<Failure>, tables: &[(Arc<str>, Arc<Latch>)]) -> Error {
    let what = match failures.first() {
        Some(Failure {
            table: Some(t),
            text,
        }) => format!("loading table {t} failed: {text}"),
        Some(Failure { table: None, text }) => text.clone(),
        None => "a connection stopped unexpectedly".into(),
    };
    Error::Mysql(format!(
        "Failed to restore MySQL backend: {what}. {}",
        left_state(cfg, tables)
    ))
}

/// What a failed load leaves: like the original's, which stops at the first failed
/// statement, a database loaded up to some point in the dump.
fn left_state(cfg: &MysqlConfig, tables: &[(Arc<str>, Arc<Latch>)]) -> String {
    let complete = tables.iter().filter(|(_, l)| l.is_open()).count();
    let partial: Vec<&str> = tables
        .iter()
        .filter(|(_, l)| !l.is_open())
        .map(|(t, _)| &**t)
        .collect();
    let shown = partial
        .iter()
        .take(10)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    let more = if partial.len() > 10 {
        format!(" and {} more", partial.len() - 10)
    } else {
        String::new()
    };
    let partial_text = if partial.is_empty() {
        String::new()
    } else {
        format!("incomplete (rows or triggers missing): {shown}{more}; ")
    };
    format!(
        "All connections were stopped. Database '{}' is left partly restored, as a failed restore \
         of the original leaves it: {complete} table(s) complete; {partial_text}the tables after \
         them in the dump, the views and routines are missing. Run the restore again",
        cfg.database
    )
}

/// A failure of the serial part, after the first tables were loaded in parallel.
fn after_tables(e: Error, cfg: &MysqlConfig, tables: &[(Arc<str>, Arc<Latch>)]) -> Error {
    match e {
        Error::Mysql(text) => Error::Mysql(format!(
            "{text}. The first {} table section(s) of the dump were loaded completely over \
             several connections, the rest serially up to the error: database '{}' is left \
             partly restored, as far as the dump got, as a failed restore of the original \
             leaves it. Run the restore again",
            tables.len(),
            cfg.database
        )),
        other => other,
    }
}
