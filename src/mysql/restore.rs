//! Feeding SQL to the `mysql` client: restoring a dump, and ad-hoc statements.
//!
//! The SQL always goes through stdin, never `-e`: it can be large (a whole dump) and should not
//! be visible in the process list. Without `--force`, `mysql` stops at the first failing
//! statement and exits non-zero with `ERROR <code> (<state>) at line <n>: <message>`.

use std::io::{self, Read, Write};
use std::process::{ChildStdin, Stdio};

use crate::error::{Error, IoContext, Result};
use crate::logging;
use crate::mysql::config::MysqlConfig;
use crate::mysql::defaults_file::DefaultsFile;
use crate::mysql::parallel_load;
use crate::mysql::sql::quote_identifier;
use crate::mysql::tools::{self, StderrCollector, Tool};

/// Replaces `cfg.database` with the dump read from `dump`, as the original does: `DROP
/// DATABASE IF EXISTS`, `CREATE DATABASE`, then the dump loaded into `mysql <database>`,
/// over [`connections`] connections at once (see [`parallel_load`]; a dump that is not
/// mysqldump's usual output is loaded serially, like the original does).
pub fn restore_from(cfg: &MysqlConfig, dump: &mut dyn Read) -> Result<()> {
    restore_with(cfg, dump, connections()).map(|_| ())
}

/// The variable that sets how many connections a restore loads the dump over (1: serially,
/// as the original).
pub const CONNECTIONS_VAR: &str = "OPSI_BACKUP_RESTORE_CONNECTIONS";

/// How many connections load a dump: [`CONNECTIONS_VAR`] if set to a number ≥ 1, else the
/// available cores, at least 2 (the server works while we read) and at most 8.
pub fn connections() -> usize {
    if let Some(v) = std::env::var_os(CONNECTIONS_VAR) {
        match v.to_str().and_then(|v| v.trim().parse::<usize>().ok()) {
            Some(n) if (1..=64).contains(&n) => return n,
            _ => logging::warning(format!(
                "{CONNECTIONS_VAR}={} is not a number from 1 to 64: ignored",
                v.to_string_lossy()
            )),
        }
    }
    std::thread::available_parallelism()
        .map_or(2, usize::from)
        .clamp(2, 8)
}

/// [`restore_from`] over `connections` connections (1: the whole dump through one `mysql`).
///
/// The dump is streamed (memory stays bounded). `mysql` failing gives [`Error::Mysql`] with its
/// message; the database is then left as far as the dump got, like the original leaves it (in
/// parallel: the tables being loaded are incomplete; the message names them). A failure to
/// read `dump` is returned as it is, after stopping `mysql`.
/// Returns what became of the rows (nothing as `LOAD DATA` in a serial load).
pub fn restore_with(
    cfg: &MysqlConfig,
    dump: &mut dyn Read,
    connections: usize,
) -> Result<parallel_load::Loaded> {
    let program = Tool::Mysql.locate()?;
    tools::database_arg(&cfg.database)?;
    let ident = quote_identifier(&cfg.database)?;
    let defaults = DefaultsFile::create(&cfg.username, &cfg.password)?;

    let recreate = format!("DROP DATABASE IF EXISTS {ident}; CREATE DATABASE {ident};\n");
    run_mysql(&program, &defaults, cfg, &[], recreate.as_bytes()).map_err(restore_error)?;

    let serial = |dump: &mut dyn Read| load_serial(&program, &defaults, cfg, dump);
    let result = if connections >= 2 {
        let local_infile = || local_infile_dir(&program, &defaults, cfg);
        let client = parallel_load::Client {
            program: &program,
            defaults: &defaults,
            cfg,
            serial: &serial,
            local_infile: &local_infile,
        };
        parallel_load::load(&client, dump, connections)
    } else {
        serial(dump).map(|()| parallel_load::Loaded::default())
    };
    drop(defaults);
    result
}

/// The variable that turns `LOAD DATA` for rows off (`0`): every row goes as the dump's
/// INSERTs.
pub const LOAD_DATA_VAR: &str = "OPSI_BACKUP_RESTORE_LOAD_DATA";

/// A private directory for the connections' FIFOs, if rows can go as `LOAD DATA LOCAL
/// INFILE`: the server is on this machine ([`MysqlConfig::is_local`]), the server and the
/// client allow it (tried once on an empty file into a temporary table of the recreated
/// database) and the directory's path needs no quoting in SQL.
fn local_infile_dir(
    program: &std::path::Path,
    defaults: &DefaultsFile,
    cfg: &MysqlConfig,
) -> Option<tempfile::TempDir> {
    if std::env::var_os(LOAD_DATA_VAR).is_some_and(|v| v == "0") {
        return None;
    }
    if !cfg.is_local() {
        logging::info(format!(
            "MySQL server {} is not on this machine: rows go as the dump's INSERTs (LOAD DATA \
             LOCAL would let it ask for any local file)",
            cfg.address
        ));
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("opsi-backup-rows-")
        .tempdir()
        .ok()?;
    let probe = dir.path().join("probe");
    let path = probe.to_str()?;
    if !path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
    {
        return None;
    }
    std::fs::File::create(&probe).ok()?;
    let sql = format!(
        "CREATE TEMPORARY TABLE `opsi_backup_probe` (a INT);\n{};\n",
        crate::mysql::load_data::statement(path, "`opsi_backup_probe`", "utf8mb4")
    );
    let args = [
        "--local-infile=1".into(),
        tools::database_arg(&cfg.database).ok()?,
    ];
    match run_mysql(program, defaults, cfg, &args, sql.as_bytes()) {
        Ok(_) => Some(dir),
        Err(e) => {
            logging::info(format!(
                "LOAD DATA LOCAL INFILE is not available ({e}): rows go as the dump's INSERTs"
            ));
            None
        }
    }
}

/// Streams `dump` into one `mysql <database>`.
fn load_serial(
    program: &std::path::Path,
    defaults: &DefaultsFile,
    cfg: &MysqlConfig,
    dump: &mut dyn Read,
) -> Result<()> {
    let database = tools::database_arg(&cfg.database)?;
    let mut cmd = tools::command(program, defaults, cfg);
    cmd.arg(database);
    // Whatever the dump prints (nothing, normally) is not needed; errors come on stderr.
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().ctx(format!("starting {}", program.display()))?;
    let stderr = StderrCollector::start(child.stderr.take().expect("stderr is piped"));
    let mut stdin = WriteTracker {
        inner: child.stdin.take().expect("stdin is piped"),
        failed: false,
    };

    let copied = io::copy(dump, &mut stdin);
    let write_failed = stdin.failed;
    drop(stdin); // end of input: mysql finishes and exits
    if !write_failed {
        if let Err(e) = copied {
            // Our side failed (archive unreadable...): stop mysql rather than let it commit
            // a half-read statement stream as if complete.
            let _ = child.kill();
            let _ = child.wait();
            stderr.finish();
            return Err(Error::io(
                "reading the MySQL dump to restore",
                io::Error::new(e.kind(), e.to_string()),
            ));
        }
        // A write failure means mysql stopped reading (it exited on an error): its status and
        // message below say why.
    }
    let status = child.wait().ctx("waiting for mysql")?;
    let text = stderr.finish();
    if !status.success() {
        let how = tools::describe_status(status);
        return Err(Error::Mysql(format!(
            "Failed to restore MySQL backend: {}",
            tools::failure_text(&text, &how, cfg)
        )));
    }
    if let Err(e) = copied {
        // mysql exited successfully without reading everything: should not happen, but the
        // restore is then incomplete.
        return Err(Error::Mysql(format!(
            "Failed to restore MySQL backend: mysql stopped reading the dump: {e}"
        )));
    }
    Ok(())
}

/// The recreate step's failure, worded like the original's.
fn restore_error(e: Error) -> Error {
    match e {
        Error::Mysql(text) => Error::Mysql(format!("Failed to restore MySQL backend: {text}")),
        other => other,
    }
}

/// Runs `sql` (one or more statements) with `mysql`, in `database` if given, and returns its
/// standard output: `--batch --skip-column-names` format, i.e. one line per row, columns
/// separated by tabs, no header; `NULL` for NULL; tab, newline and backslash escaped as `\t`,
/// `\n`, `\\`. The session uses utf8mb4. Fails with [`Error::Mysql`] and mysql's message.
pub fn run_sql(cfg: &MysqlConfig, database: Option<&str>, sql: &str) -> Result<String> {
    let program = Tool::Mysql.locate()?;
    let database = database.map(tools::database_arg).transpose()?;
    let defaults = DefaultsFile::create(&cfg.username, &cfg.password)?;
    let mut args: Vec<std::ffi::OsString> = vec![
        "--batch".into(),
        "--skip-column-names".into(),
        "--default-character-set=utf8mb4".into(),
    ];
    args.extend(database);
    let out = run_mysql(&program, &defaults, cfg, &args, sql.as_bytes())?;
    drop(defaults);
    String::from_utf8(out)
        .map_err(|_| Error::Mysql("mysql returned output that is not UTF-8".into()))
}

/// Runs mysql with `input` on stdin and returns its stdout. stdin is written on its own thread
/// so that neither a large input nor a large output can deadlock on a full pipe.
fn run_mysql(
    program: &std::path::Path,
    defaults: &DefaultsFile,
    cfg: &MysqlConfig,
    args: &[std::ffi::OsString],
    input: &[u8],
) -> Result<Vec<u8>> {
    let mut cmd = tools::command(program, defaults, cfg);
    cmd.args(args);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().ctx(format!("starting {}", program.display()))?;
    let stderr = StderrCollector::start(child.stderr.take().expect("stderr is piped"));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut out = Vec::new();
    let read = std::thread::scope(|s| {
        // A write error means mysql exited early; its exit status tells why.
        s.spawn(move || {
            let _ = stdin.write_all(input);
        });
        stdout.read_to_end(&mut out)
    });
    let status = child.wait().ctx("waiting for mysql")?;
    let text = stderr.finish();
    if !status.success() {
        let how = tools::describe_status(status);
        return Err(Error::Mysql(format!(
            "mysql failed: {}",
            tools::failure_text(&text, &how, cfg)
        )));
    }
    read.ctx("reading the output of mysql")?;
    Ok(out)
}

/// Remembers whether writing to mysql failed, to tell mysql's failures from the dump reader's.
struct WriteTracker {
    inner: ChildStdin,
    failed: bool,
}

impl Write for WriteTracker {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).inspect_err(|_| self.failed = true)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().inspect_err(|_| self.failed = true)
    }
}
