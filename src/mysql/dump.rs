//! Dumping a MySQL backend: `mysqldump` streamed straight into a member sink.
//!
//! The dump is never copied to a temporary file by us: the sink reads mysqldump's stdout
//! directly. A failed dump must never look like a complete one, so the stream itself reports
//! the failure: at end of output we first wait for mysqldump, and if it did not succeed the
//! final read returns an error instead of end-of-file. A sink therefore never commits a
//! truncated dump as if it were whole.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};

use crate::error::{Error, IoContext, Result};
use crate::member::Member;
use crate::mysql::config::MysqlConfig;
use crate::mysql::defaults_file::DefaultsFile;
use crate::mysql::tools::{self, StderrCollector, Tool};
use crate::sink::MemberSink;

/// How mysqldump keeps the dump consistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// `--lock-tables`, the original's choice: read locks on all tables of the database for
    /// the whole dump. Consistent for every storage engine, but opsi's writes wait meanwhile.
    #[default]
    LockTables,
    /// `--single-transaction`: one consistent InnoDB snapshot without locks, so opsi keeps
    /// working during the dump. Not consistent for MyISAM tables (opsi only uses InnoDB).
    /// mysqldump refuses to combine it with `--lock-tables`, which is therefore left out.
    SingleTransaction,
}

/// Options for [`dump_into`]. The default matches the original's command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DumpOptions {
    /// `--flush-logs` (needs the RELOAD privilege; without it the dump fails).
    pub flush_logs: bool,
    pub consistency: Consistency,
}

/// The arguments after `--defaults-file` and the address.
///
/// Besides the original's options we always pass two that make consecutive nightly dumps
/// byte-identical where the data is, which lets the repository deduplicate them:
/// - `--skip-dump-date`: the trailing `-- Dump completed on <date>` comment loses its date.
///   It is only a comment, so `mysql db < dump` (the original's restore) is unaffected.
/// - `--order-by-primary`: rows come out in primary-key order even for engines without a
///   clustered index (InnoDB dumps are in that order already). It only adds `ORDER BY` to
///   mysqldump's SELECTs; the dump's statements are the same kind, restorable as before.
fn dump_args(opts: &DumpOptions) -> Vec<&'static str> {
    let mut args = Vec::new();
    match opts.consistency {
        Consistency::LockTables => args.push("--lock-tables"),
        Consistency::SingleTransaction => args.push("--single-transaction"),
    }
    args.push("--add-drop-table");
    if opts.flush_logs {
        args.push("--flush-logs");
    }
    args.extend(["--skip-dump-date", "--order-by-primary"]);
    args
}

/// The backend's name for messages: the directory of the dump member
/// (`CONTENT/BACKENDS/MYSQL/<name>/database.sql` in the original's layout), else the database.
fn backend_name<'a>(member: &'a Member, cfg: &'a MysqlConfig) -> &'a str {
    let mut parts = member.path.rsplit('/');
    parts.next();
    parts
        .next()
        .filter(|p| !p.is_empty())
        .unwrap_or(&cfg.database)
}

/// Dumps `cfg.database` with mysqldump into `sink` as `member` (its `size` is set from the
/// stream) and returns the dump's size.
///
/// Fails with [`Error::Mysql`] (`mysqldump failed for backend <name>: <mysqldump's messages>`)
/// when mysqldump cannot be found, exits non-zero, dies from a signal or its output cannot be
/// read. The sink sees such failures as a read error, so it does not keep the member; errors
/// of the sink itself are returned as they are (mysqldump is then killed).
pub fn dump_into(
    cfg: &MysqlConfig,
    opts: &DumpOptions,
    member: Member,
    sink: &mut dyn MemberSink,
) -> Result<u64> {
    let name = backend_name(&member, cfg).to_string();
    let (mut stream, defaults) = spawn(cfg, opts)?;
    let added = sink.add_unsized(member, &mut stream);
    let state = std::mem::replace(&mut stream.state, State::Done);
    let result = match (added, state) {
        (Ok(size), State::Done) => Ok(size),
        (_, State::Failed(text)) => Err(failed(&name, &text)),
        // The sink returned without reading to the end: what it kept is not the whole dump.
        // (Dropping the stream below stops mysqldump.)
        (Ok(_), State::Running) => Err(not_read_to_end(&name)),
        // The sink's own failure (disk full...): reported as it is, mysqldump is stopped.
        (Err(e), _) => Err(e),
    };
    if result.is_err() {
        stream.stop();
    }
    drop(stream);
    drop(defaults);
    result
}

pub(crate) fn failed(name: &str, text: &str) -> Error {
    Error::Mysql(format!("mysqldump failed for backend {name}: {text}"))
}

pub(crate) fn not_read_to_end(name: &str) -> Error {
    Error::Invalid(format!(
        "the dump of backend {name} was not read to its end"
    ))
}

/// A started mysqldump, its error output being collected.
pub(crate) struct Started {
    pub child: Child,
    pub stderr: StderrCollector,
    /// Holds the password; mysqldump may read it late, so it must outlive the dump.
    pub defaults: DefaultsFile,
}

/// Starts mysqldump writing its dump to `stdout`.
pub(crate) fn start(cfg: &MysqlConfig, opts: &DumpOptions, stdout: Stdio) -> Result<Started> {
    let program = Tool::Mysqldump.locate()?;
    let database = tools::database_arg(&cfg.database)?;
    let defaults = DefaultsFile::create(&cfg.username, &cfg.password)?;
    let mut cmd = tools::connect(buffered(&program), &defaults, cfg);
    cmd.args(dump_args(opts)).arg(database);
    cmd.stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped());
    // A backup killed with -9 must not leave mysqldump behind, holding its table locks and
    // writing into a spool nobody reads: `connect` (DefaultsFile::hand_to) has it killed when
    // the thread that started it ends.
    let mut child = cmd.spawn().ctx(format!("starting {}", program.display()))?;
    let stderr = StderrCollector::start(child.stderr.take().expect("stderr is piped"));
    Ok(Started {
        child,
        stderr,
        defaults,
    })
}

/// mysqldump writes through C stdio, which flushes a file or pipe every 4 KiB: ~60,000
/// `write` calls for a 240 MB dump, 0.2-0.4 CPU-s of kernel time (measured), on the two
/// cores that the dump and its backup share. coreutils' `stdbuf` gives its stdout a
/// 1 MiB buffer (then execs it: same process, same exit status); without a working `stdbuf`
/// mysqldump runs as it is. The dump's bytes are the same either way.
fn buffered(program: &Path) -> Command {
    buffered_by(working_stdbuf(), program)
}

/// `stdbuf` from `PATH`, once it has shown that it runs a program (it refuses to when its
/// preload library is missing, which would fail every dump).
fn working_stdbuf() -> Option<PathBuf> {
    static STDBUF: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    STDBUF
        .get_or_init(|| {
            let stdbuf = tools::on_path("stdbuf")?;
            let ok = buffered_by(Some(stdbuf.clone()), &stdbuf)
                .arg("--version")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            ok.then_some(stdbuf)
        })
        .clone()
}

fn buffered_by(stdbuf: Option<PathBuf>, program: &Path) -> Command {
    match stdbuf {
        Some(stdbuf) => {
            let mut cmd = Command::new(stdbuf);
            cmd.arg(format!("--output={STDOUT_BUFFER}")).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// mysqldump's stdout buffer (`stdbuf` size syntax).
const STDOUT_BUFFER: &str = "1M";

/// How an exited mysqldump ended: `Ok` on success, else its messages and exit status.
pub(crate) fn outcome(
    status: io::Result<ExitStatus>,
    stderr: StderrCollector,
    cfg: &MysqlConfig,
) -> std::result::Result<(), String> {
    let stderr = stderr.finish();
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(tools::failure_text(
            &stderr,
            &tools::describe_status(s),
            cfg,
        )),
        Err(e) => Err(tools::failure_text(
            &stderr,
            &format!("waiting for it: {e}"),
            cfg,
        )),
    }
}

/// Starts mysqldump with its stdout piped to us.
fn spawn(cfg: &MysqlConfig, opts: &DumpOptions) -> Result<(DumpStream, DefaultsFile)> {
    let Started {
        mut child,
        stderr,
        defaults,
    } = start(cfg, opts, Stdio::piped())?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stream = DumpStream {
        stdout,
        child,
        stderr: Some(stderr),
        cfg: cfg.clone(),
        state: State::Running,
    };
    Ok((stream, defaults))
}

enum State {
    Running,
    /// mysqldump ended successfully after its output ended.
    Done,
    /// mysqldump failed; the text says how.
    Failed(String),
}

/// mysqldump's stdout, which only reports end-of-file once mysqldump has exited successfully.
pub(crate) struct DumpStream {
    stdout: ChildStdout,
    child: Child,
    stderr: Option<StderrCollector>,
    cfg: MysqlConfig,
    state: State,
}

impl DumpStream {
    /// Waits for mysqldump and records how it ended; returns whether it succeeded.
    fn finish(&mut self) -> bool {
        let status = self.child.wait();
        let Some(stderr) = self.stderr.take() else {
            return matches!(self.state, State::Done);
        };
        self.state = match outcome(status, stderr, &self.cfg) {
            Ok(()) => State::Done,
            Err(text) => State::Failed(text),
        };
        matches!(self.state, State::Done)
    }

    /// Kills mysqldump (if still running) and reaps it, so no zombie or stray dump is left.
    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(s) = self.stderr.take() {
            s.finish();
        }
    }

    fn failed(&self) -> io::Error {
        io::Error::other("mysqldump failed (see the MySQL error)")
    }
}

impl Drop for DumpStream {
    // A panicking sink must not leave mysqldump running with the tables locked.
    fn drop(&mut self) {
        if self.stderr.is_some() {
            self.stop();
        }
    }
}

impl Read for DumpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.state {
            State::Running => {}
            State::Done => return Ok(0),
            State::Failed(_) => return Err(self.failed()),
        }
        match self.stdout.read(buf) {
            Ok(0) if !buf.is_empty() => {
                if self.finish() {
                    Ok(0)
                } else {
                    Err(self.failed())
                }
            }
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let _ = self.child.kill();
                self.finish();
                if let State::Failed(text) = &mut self.state {
                    text.push_str(&format!("; reading its output: {e}"));
                } else {
                    self.state = State::Failed(format!("reading its output: {e}"));
                }
                Err(self.failed())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With `stdbuf`, it runs mysqldump with a bigger stdout buffer; without, mysqldump runs
    /// directly.
    #[test]
    fn stdbuf_wraps_mysqldump_when_installed() {
        let dump = Path::new("/opt/mariadb/bin/mysqldump");
        let with = buffered_by(Some("/usr/bin/stdbuf".into()), dump);
        assert_eq!(with.get_program(), "/usr/bin/stdbuf");
        let args: Vec<_> = with.get_args().collect();
        assert_eq!(args, ["--output=1M", "/opt/mariadb/bin/mysqldump"]);
        let without = buffered_by(None, dump);
        assert_eq!(without.get_program(), dump);
        assert_eq!(without.get_args().count(), 0);
    }

    #[test]
    fn original_options_plus_stable_ones() {
        assert_eq!(
            dump_args(&DumpOptions::default()),
            [
                "--lock-tables",
                "--add-drop-table",
                "--skip-dump-date",
                "--order-by-primary"
            ]
        );
        let opts = DumpOptions {
            flush_logs: true,
            consistency: Consistency::SingleTransaction,
        };
        assert_eq!(
            dump_args(&opts),
            [
                "--single-transaction",
                "--add-drop-table",
                "--flush-logs",
                "--skip-dump-date",
                "--order-by-primary"
            ]
        );
    }

    #[test]
    fn backend_name_from_member_path() {
        let cfg = MysqlConfig {
            address: String::new(),
            database: "opsi".into(),
            username: String::new(),
            password: String::new(),
        };
        let m = Member::control(&crate::layout::mysql_dump("mysql"), 0);
        assert_eq!(backend_name(&m, &cfg), "mysql");
        let m = Member::control("database.sql", 0);
        assert_eq!(backend_name(&m, &cfg), "opsi");
    }
}
