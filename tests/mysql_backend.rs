//! Integration tests of `opsi_backup::mysql` against a real MySQL/MariaDB server.
//!
//! Set `OPSI_BACKUP_TEST_MYSQL` to find the server (else every test fails, or with
//! `OPSI_BACKUP_SKIP_MYSQL=1` prints "SKIPPED (not tested)" and passes):
//! - `/run/mysqld/mysqld.sock` — a socket path, user root, empty password;
//! - `socket=/run/mysqld/mysqld.sock;user=root;password=` or
//!   `host=127.0.0.1;port=3306;user=root;password=secret` — `;`-separated `key=value` pairs.
//!
//! The account must be able to create databases and users: each test works in its own
//! database (`obt_<test>_<pid>_<n>`) as its own user, whose password is full of characters
//! that need quoting. `.ci/mysql-setup.sh` starts a local MariaDB and prints a value to use.
//!
//! The dump/restore measurement for deduplication is `#[ignore]`d (it loads ~80 MB):
//! `cargo test --test mysql_backend -- --ignored --nocapture measure`.

#[path = "common/mysql_env.rs"]
mod mysql_env;
#[path = "common/mysql_schema.rs"]
mod mysql_schema;

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mysql_env::{server, with_tools, TestDb, ToolOverride, NASTY_PASSWORD};
use mysql_schema::{database_sql, DataSize, TABLES};
use opsi_backup::error::{Error, IoContext, Result};
use opsi_backup::member::{Member, MemberKind, Mtime};
use opsi_backup::mysql::{
    dump_into, restore_from, run_sql, Consistency, DumpOptions, MysqlConfig, Prefetch,
};
use opsi_backup::sink::MemberSink;

const MEMBER_PATH: &str = "CONTENT/BACKENDS/MYSQL/mysql/database.sql";

/// Keeps every member in memory; uses the default (spooling) `add_unsized`.
#[derive(Default)]
struct VecSink {
    members: Vec<(Member, Vec<u8>)>,
}

impl MemberSink for VecSink {
    fn add(&mut self, member: &Member, content: &mut dyn Read) -> Result<()> {
        let mut data = Vec::new();
        content.read_to_end(&mut data).ctx("reading member")?;
        assert_eq!(
            data.len() as u64,
            member.size,
            "member size and content disagree"
        );
        self.members.push((member.clone(), data));
        Ok(())
    }
}

/// Overrides `add_unsized` to read the stream directly, like a repository writer would;
/// optionally fails after `fail_after` bytes, like a full disk.
#[derive(Default)]
struct StreamingSink {
    members: Vec<(Member, Vec<u8>)>,
    fail_after: Option<usize>,
}

impl MemberSink for StreamingSink {
    fn add(&mut self, _: &Member, _: &mut dyn Read) -> Result<()> {
        unreachable!("only add_unsized is used")
    }
    fn add_unsized(&mut self, mut member: Member, content: &mut dyn Read) -> Result<u64> {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = content.read(&mut buf).ctx("reading dump")?;
            if n == 0 {
                break;
            }
            data.extend_from_slice(&buf[..n]);
            if self.fail_after.is_some_and(|limit| data.len() > limit) {
                return Err(Error::Invalid("test sink is full".into()));
            }
        }
        member.size = data.len() as u64;
        self.members.push((member, data));
        Ok(self.members.last().unwrap().0.size)
    }
}

fn member() -> Member {
    Member {
        path: MEMBER_PATH.into(),
        kind: MemberKind::File,
        mode: 0o600,
        uid: 0,
        gid: 0,
        uname: "root".into(),
        gname: "root".into(),
        mtime: Mtime::from_unix(1_704_067_215, 0),
        size: 0,
        raw_header: None,
        stamp: None,
        xattrs: Vec::new(),
    }
}

/// Row count and CHECKSUM TABLE of every table.
fn fingerprint(cfg: &MysqlConfig) -> String {
    let mut sql = String::new();
    for t in TABLES {
        sql.push_str(&format!(
            "SELECT '{t}', COUNT(*) FROM `{t}`; CHECKSUM TABLE `{t}` EXTENDED;\n"
        ));
    }
    with_tools(|| run_sql(cfg, Some(&cfg.database), &sql)).expect("fingerprint")
}

fn load(db: &TestDb, size: &DataSize) {
    let sql = database_sql(size);
    with_tools(|| restore_from(&db.cfg, &mut &sql[..])).expect("loading test data");
}

/// Checks that `err` is `Error::Mysql` holding all `needles` and never the password.
fn assert_mysql_error(err: &Error, needles: &[&str]) {
    let text = match err {
        Error::Mysql(text) => text,
        other => panic!("expected Error::Mysql, got {other:?}"),
    };
    for n in needles {
        assert!(text.contains(n), "error {text:?} lacks {n:?}");
    }
    for secret in [NASTY_PASSWORD, NASTY_PASSWORD.trim(), "pä'ss"] {
        assert!(!text.contains(secret), "password leaked into {text:?}");
        assert!(
            !format!("{err:?}").contains(secret),
            "password leaked into {err:?}"
        );
    }
}

/// A shell script in `dir`, executable.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn real_tool(name: &str) -> PathBuf {
    let paths = std::env::var_os("PATH").unwrap();
    std::env::split_paths(&paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .expect("client tool on PATH")
}

/// A wrapper around the real tool that records its arguments and the defaults file's mode.
struct Recorder {
    dir: tempfile::TempDir,
    program: PathBuf,
}

impl Recorder {
    fn new(tool: &str) -> Recorder {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("args");
        let body = format!(
            "printf '%s\\n' \"$@\" >> '{log}'\nstat -L -c 'mode=%a' \"${{1#--defaults-file=}}\" >> '{log}'\nexec '{real}' \"$@\"\n",
            log = log.display(),
            real = real_tool(tool).display()
        );
        let program = script(dir.path(), tool, &body);
        Recorder { dir, program }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("args")).unwrap_or_default()
    }

    /// Every run got the defaults file first, private, as an inherited descriptor; no secret
    /// in argv.
    fn check(&self) {
        let log = self.log();
        let mut runs = 0;
        for line in log.lines().filter(|l| l.starts_with("--defaults-file=")) {
            runs += 1;
            // An inherited descriptor, never a named file a crash could leave behind.
            let path = line.trim_start_matches("--defaults-file=");
            assert!(
                path.starts_with("/dev/fd/"),
                "defaults file {path} is a named file"
            );
        }
        assert!(runs > 0, "tool never ran: {log}");
        assert_eq!(
            log.matches("mode=600").count(),
            runs,
            "defaults file not private: {log}"
        );
        assert!(
            !log.contains("pä'ss"),
            "password on the command line: {log}"
        );
        let first = log.lines().next().unwrap();
        assert!(
            first.starts_with("--defaults-file="),
            "defaults file not first: {log}"
        );
    }
}

#[test]
fn round_trip_preserves_every_table() {
    let Some(server) = server() else { return };
    let db = TestDb::create(&server, "roundtrip");
    load(&db, &DataSize::small());
    let before = fingerprint(&db.cfg);
    assert!(before.contains("BLOBS"), "{before}");

    let mut sink = VecSink::default();
    let size =
        with_tools(|| dump_into(&db.cfg, &DumpOptions::default(), member(), &mut sink)).unwrap();
    assert_eq!(sink.members.len(), 1);
    let (m, dump) = &sink.members[0];
    assert_eq!((m.size, dump.len() as u64), (size, size));
    assert_eq!(m.path, MEMBER_PATH);
    let text = String::from_utf8_lossy(dump);
    assert!(text.contains("DROP TABLE IF EXISTS `SOFTWARE_CONFIG`"));
    // --skip-dump-date: the closing comment carries no date, so unchanged data dumps the same.
    assert!(
        text.trim_end().ends_with("-- Dump completed"),
        "{}",
        &text[text.len().saturating_sub(200)..]
    );

    with_tools(|| run_sql(&db.cfg, None, &format!("DROP DATABASE `{}`", db.name))).unwrap();
    with_tools(|| restore_from(&db.cfg, &mut &dump[..])).unwrap();
    assert_eq!(fingerprint(&db.cfg), before);

    // The same data dumps to the same bytes (what deduplication relies on).
    let mut again = VecSink::default();
    with_tools(|| dump_into(&db.cfg, &DumpOptions::default(), member(), &mut again)).unwrap();
    assert!(
        again.members[0].1 == *dump,
        "a dump of unchanged data differs"
    );
}

#[test]
fn round_trip_single_transaction_streaming() {
    let Some(server) = server() else { return };
    let db = TestDb::create(&server, "singletx");
    load(
        &db,
        &DataSize {
            clients: 8,
            software_per_client: 20,
            seed: 3,
            ..DataSize::small()
        },
    );
    let before = fingerprint(&db.cfg);
    let opts = DumpOptions {
        flush_logs: false,
        consistency: Consistency::SingleTransaction,
    };
    let rec = Recorder::new("mysqldump");
    let mut sink = StreamingSink::default();
    {
        let _o = ToolOverride::set(&[("OPSI_BACKUP_MYSQLDUMP", &rec.program)]);
        dump_into(&db.cfg, &opts, member(), &mut sink).unwrap();
    }
    rec.check();
    let log = rec.log();
    assert!(
        log.contains("--single-transaction") && !log.contains("--lock-tables"),
        "{log}"
    );
    let dump = &sink.members[0].1;
    with_tools(|| restore_from(&db.cfg, &mut &dump[..])).unwrap();
    assert_eq!(fingerprint(&db.cfg), before);
}

#[test]
fn dump_with_wrong_password() {
    let Some(server) = server() else { return };
    let db = TestDb::create(&server, "wrongpw");
    let cfg = MysqlConfig {
        password: format!("{NASTY_PASSWORD}x"),
        ..db.cfg.clone()
    };
    let rec = Recorder::new("mysqldump");
    let mut sink = VecSink::default();
    let err = {
        let _o = ToolOverride::set(&[("OPSI_BACKUP_MYSQLDUMP", &rec.program)]);
        dump_into(&cfg, &DumpOptions::default(), member(), &mut sink).unwrap_err()
    };
    assert_mysql_error(
        &err,
        &["mysqldump failed for backend mysql:", "Access denied"],
    );
    assert!(sink.members.is_empty(), "a failed dump was stored");
    rec.check();
}

#[test]
fn dump_of_missing_database() {
    let Some(server) = server() else { return };
    let db = TestDb::create(&server, "missingdb");
    let cfg = MysqlConfig {
        database: format!("{}_nope", db.name),
        ..db.cfg.clone()
    };
    let rec = Recorder::new("mysqldump");
    let mut sink = VecSink::default();
    let err = {
        let _o = ToolOverride::set(&[("OPSI_BACKUP_MYSQLDUMP", &rec.program)]);
        dump_into(&cfg, &DumpOptions::default(), member(), &mut sink).unwrap_err()
    };
    // The user may not even see the database: either message is the server's own.
    let Error::Mysql(text) = &err else {
        panic!("{err:?}")
    };
    assert!(
        text.contains("Unknown database") || text.contains("Access denied"),
        "{text}"
    );
    assert_mysql_error(&err, &["mysqldump failed"]);
    assert!(sink.members.is_empty());
    rec.check();
}

#[test]
fn dump_and_restore_with_server_down() {
    let Some(server) = server() else { return };
    let db = TestDb::create(&server, "down");
    let gone = tempfile::tempdir().unwrap();
    let cfg = MysqlConfig {
        address: gone.path().join("mysqld.sock").display().to_string(),
        ..db.cfg.clone()
    };
    let dump_rec = Recorder::new("mysqldump");
    let mysql_rec = Recorder::new("mysql");
    let (dump_err, restore_err) = {
        let _o = ToolOverride::set(&[
            ("OPSI_BACKUP_MYSQLDUMP", &dump_rec.program),
            ("OPSI_BACKUP_MYSQL", &mysql_rec.program),
        ]);
        let mut sink = VecSink::default();
        let d = dump_into(&cfg, &DumpOptions::default(), member(), &mut sink).unwrap_err();
        assert!(sink.members.is_empty());
        let r = restore_from(&cfg, &mut &b"SELECT 1;"[..]).unwrap_err();
        (d, r)
    };
    assert_mysql_error(&dump_err, &["mysqldump failed", "Can't connect"]);
    assert_mysql_error(
        &restore_err,
        &["Failed to restore MySQL backend", "Can't connect"],
    );
    dump_rec.check();
    mysql_rec.check();
}

#[test]
fn flush_logs_needs_reload_privilege() {
    let Some(server) = server() else { return };
    let db = TestDb::create(&server, "flush");
    db.root_sql("CREATE TABLE t (i int); INSERT INTO t VALUES (1);");
    let opts = DumpOptions {
        flush_logs: true,
        ..DumpOptions::default()
    };
    let mut sink = VecSink::default();
    let err = with_tools(|| dump_into(&db.cfg, &opts, member(), &mut sink)).unwrap_err();
    assert_mysql_error(&err, &["mysqldump failed", "RELOAD"]);
    assert!(sink.members.is_empty());

    db.root_sql(&format!(
        "GRANT RELOAD ON *.* TO '{}'@'localhost', '{}'@'%'",
        db.name, db.name
    ));
    with_tools(|| dump_into(&db.cfg, &opts, member(), &mut sink)).unwrap();
    assert_eq!(sink.members.len(), 1);
}

#[test]
fn mysqldump_not_installed() {
    let Some(server) = server() else { return };
    let cfg = MysqlConfig {
        database: "opsi".into(),
        ..server.root()
    };
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("mysqldump");
    let mut sink = VecSink::default();
    let (dump_err, restore_err) = {
        let _o = ToolOverride::set(&[
            ("OPSI_BACKUP_MYSQLDUMP", &missing),
            ("OPSI_BACKUP_MYSQL", &missing),
        ]);
        let d = dump_into(&cfg, &DumpOptions::default(), member(), &mut sink).unwrap_err();
        let r = restore_from(&cfg, &mut &b""[..]).unwrap_err();
        (d, r)
    };
    assert_mysql_error(
        &dump_err,
        &["mysqldump is not available", "OPSI_BACKUP_MYSQLDUMP"],
    );
    assert_mysql_error(
        &restore_err,
        &["mysql is not available", "OPSI_BACKUP_MYSQL"],
    );
    assert!(sink.members.is_empty());
}

/// A fake mysqldump that records its pid in `dir/pid`, then runs `exec`.
fn pid_recording_mysqldump(dir: &Path, exec: &str) -> PathBuf {
    let pid = dir.join("pid");
    script(
        dir,
        "mysqldump",
        &format!("echo $$ > '{}'\n{exec}\n", pid.display()),
    )
}

/// The fake mysqldump of `pid_recording_mysqldump` is gone (killed and reaped).
fn assert_not_running(dir: &Path) {
    let pid = fs::read_to_string(dir.join("pid")).unwrap();
    assert!(
        !Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "mysqldump still running"
    );
}

/// Fake mysqldumps that write a good part of a dump and then fail.
fn failing_mysqldump(dir: &Path, ending: &str) -> PathBuf {
    let log = dir.join("args");
    let body = format!(
        "printf '%s\\n' \"$@\" > '{log}'\n\
         echo '-- MariaDB dump 10.19'\n\
         echo 'DROP TABLE IF EXISTS `HOST`;'\n\
         head -c 3000000 /dev/zero | tr '\\0' 'x'\n\
         echo\n{ending}\n",
        log = log.display()
    );
    script(dir, "mysqldump", &body)
}

fn check_fake_run(dir: &Path) {
    let log = fs::read_to_string(dir.join("args")).unwrap();
    let first = log.lines().next().unwrap();
    let path = first
        .strip_prefix("--defaults-file=")
        .expect("defaults file first");
    // An inherited descriptor, never a named file that a failed run could leave behind.
    // (Whether /dev/fd/N exists here says nothing: it names this test process's own fd N.)
    assert!(
        path.starts_with("/dev/fd/"),
        "defaults file {path} is a named file"
    );
    assert!(!log.contains("pä'ss"));
}

#[test]
fn mysqldump_failing_half_way() {
    let Some(server) = server() else { return };
    let cfg = MysqlConfig {
        database: "opsi".into(),
        password: NASTY_PASSWORD.into(),
        ..server.root()
    };
    let dir = tempfile::tempdir().unwrap();
    let fake = failing_mysqldump(
        dir.path(),
        "echo 'mysqldump: Error 2013: Lost connection to server during query when dumping table `HOST` at row: 1234' >&2\nexit 3",
    );
    let mut spooling = VecSink::default();
    let mut streaming = StreamingSink::default();
    let (e1, e2) = {
        let _o = ToolOverride::set(&[("OPSI_BACKUP_MYSQLDUMP", &fake)]);
        let e1 = dump_into(&cfg, &DumpOptions::default(), member(), &mut spooling).unwrap_err();
        check_fake_run(dir.path());
        let e2 = dump_into(&cfg, &DumpOptions::default(), member(), &mut streaming).unwrap_err();
        check_fake_run(dir.path());
        (e1, e2)
    };
    for e in [e1, e2] {
        assert_mysql_error(
            &e,
            &[
                "mysqldump failed for backend mysql:",
                "Lost connection",
                "exit status 3",
            ],
        );
    }
    assert!(
        spooling.members.is_empty() && streaming.members.is_empty(),
        "a truncated dump was stored"
    );
}

#[test]
fn mysqldump_killed_half_way() {
    let Some(server) = server() else { return };
    let cfg = MysqlConfig {
        database: "opsi".into(),
        ..server.root()
    };
    let dir = tempfile::tempdir().unwrap();
    let fake = failing_mysqldump(dir.path(), "kill -9 $$");
    let mut sink = StreamingSink::default();
    let err = {
        let _o = ToolOverride::set(&[("OPSI_BACKUP_MYSQLDUMP", &fake)]);
        dump_into(&cfg, &DumpOptions::default(), member(), &mut sink).unwrap_err()
    };
    assert_mysql_error(&err, &["mysqldump failed", "killed by signal 9"]);
    assert!(sink.members.is_empty());
    check_fake_run(dir.path());
}

#[test]
fn sink_failure_stops_mysqldump() {
    let Some(server) = server() else { return };
    let cfg = MysqlConfig {
        database: "opsi".into(),
        ..server.root()
    };
    let dir = tempfile::tempdir().unwrap();
    // Would write forever if not stopped.
    let fake = pid_recording_mysqldump(dir.path(), "exec yes 'INSERT INTO t VALUES (1);'");
    let mut sink = StreamingSink {
        fail_after: Some(100_000),
        ..Default::default()
    };
    let err = {
        let _o = ToolOverride::set(&[("OPSI_BACKUP_MYSQLDUMP", &fake)]);
        dump_into(&cfg, &DumpOptions::default(), member(), &mut sink).unwrap_err()
    };
    assert!(
        matches!(&err, Error::Invalid(t) if t == "test sink is full"),
        "{err:?}"
    );
    assert_not_running(dir.path());
}

#[test]
fn restore_stops_at_first_error() {
    let Some(server) = server() else { return };
    let db = TestDb::create(&server, "badsql");
    let dump = b"CREATE TABLE a (i int);\nINSERT INTO a VALUES (1);\nTHIS IS NOT SQL;\nCREATE TABLE b (i int);\n";
    let rec = Recorder::new("mysql");
    let err = {
        let _o = ToolOverride::set(&[("OPSI_BACKUP_MYSQL", &rec.program)]);
        restore_from(&db.cfg, &mut &dump[..]).unwrap_err()
    };
    assert_mysql_error(
        &err,
        &["Failed to restore MySQL backend", "ERROR 1064", "at line 3"],
    );
    rec.check();
    // Applied up to the error, nothing after it.
    assert_eq!(db.root_sql("SHOW TABLES"), "a\n");
}

#[test]
fn restore_with_wrong_password() {
    let Some(server) = server() else { return };
    let db = TestDb::create(&server, "restorepw");
    db.root_sql("CREATE TABLE keep (i int);");
    let cfg = MysqlConfig {
        password: "wrong-password".into(),
        ..db.cfg.clone()
    };
    let err = with_tools(|| restore_from(&cfg, &mut &b"CREATE TABLE x (i int);"[..])).unwrap_err();
    assert_mysql_error(&err, &["Failed to restore MySQL backend", "Access denied"]);
    assert!(!err.to_string().contains("wrong-password"));
    assert_eq!(
        db.root_sql("SHOW TABLES"),
        "keep\n",
        "database touched despite failed login"
    );
}

#[test]
fn run_sql_returns_batch_output() {
    let Some(server) = server() else { return };
    let db = TestDb::create(&server, "runsql");
    let out = with_tools(|| {
        run_sql(&db.cfg, Some(&db.name), "CREATE TABLE h (id varchar(50), n int); INSERT INTO h VALUES ('Größe\tx', NULL), ('b', 2); SELECT * FROM h ORDER BY n IS NULL DESC, n;")
    })
    .unwrap();
    assert_eq!(out, "Größe\\tx\tNULL\nb\t2\n");
    let err = with_tools(|| run_sql(&db.cfg, None, "SELECT * FROM no_such_db.t")).unwrap_err();
    assert_mysql_error(&err, &["mysql failed", "ERROR"]);
}

/// Bytes of `new`'s lines that do not occur (as often) in `old`: what a line-based
/// deduplication would have to store again.
fn changed_line_bytes(old: &[u8], new: &[u8]) -> (usize, usize) {
    let mut have: HashMap<&[u8], usize> = HashMap::new();
    for l in old.split(|&b| b == b'\n') {
        *have.entry(l).or_default() += 1;
    }
    let (mut lines, mut bytes) = (0, 0);
    for l in new.split(|&b| b == b'\n') {
        match have.get_mut(l) {
            Some(n) if *n > 0 => *n -= 1,
            _ => {
                lines += 1;
                bytes += l.len() + 1;
            }
        }
    }
    (lines, bytes)
}

/// Bytes of `new` in content-defined chunks (FastCDC, average `avg`, min avg/4, max avg*4)
/// not present in `old`.
fn changed_chunk_bytes(old: &[u8], new: &[u8], avg: u32) -> usize {
    use std::collections::HashSet;
    let chunks = |d: &[u8]| -> Vec<(blake3::Hash, usize)> {
        fastcdc::v2020::FastCDC::new(d, avg / 4, avg, avg * 4)
            .map(|c| (blake3::hash(&d[c.offset..c.offset + c.length]), c.length))
            .collect()
    };
    let have: HashSet<blake3::Hash> = chunks(old).into_iter().map(|(h, _)| h).collect();
    chunks(new)
        .into_iter()
        .filter(|(h, _)| !have.contains(h))
        .map(|(_, n)| n)
        .sum()
}

/// The original's command line, for comparison.
fn original_dump(cfg: &MysqlConfig) -> Vec<u8> {
    use opsi_backup::mysql::defaults_file::DefaultsFile;
    let defaults = DefaultsFile::create(&cfg.username, &cfg.password).unwrap();
    let out = with_tools(|| {
        opsi_backup::mysql::tools::command(&real_tool("mysqldump"), &defaults, cfg)
            .args(["--lock-tables", "--add-drop-table", &cfg.database])
            .output()
            .unwrap()
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
#[ignore = "loads ~80 MB; run with --ignored --nocapture to measure"]
fn measure_nightly_dump_changes() {
    let Some(server) = server() else { return };
    let db = TestDb::create(&server, "measure");
    let clients: usize = std::env::var("MEASURE_CLIENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let size = DataSize::realistic(clients);
    let t = std::time::Instant::now();
    load(&db, &size);
    eprintln!("loaded {clients} clients in {:?}", t.elapsed());
    let ours = |cfg: &MysqlConfig| {
        let mut sink = StreamingSink::default();
        with_tools(|| dump_into(cfg, &DumpOptions::default(), member(), &mut sink)).unwrap();
        sink.members.pop().unwrap().1
    };
    let (orig_a, ours_a) = (original_dump(&db.cfg), ours(&db.cfg));
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a different dump date
    let (orig_same, ours_same) = (original_dump(&db.cfg), ours(&db.cfg));

    let mut changes = Vec::new();
    mysql_schema::write_nightly_changes(&mut changes, &size, 1.0, 3, 99).unwrap();
    with_tools(|| {
        run_sql(
            &db.cfg,
            Some(&db.name),
            &String::from_utf8(changes).unwrap(),
        )
    })
    .unwrap();
    let (orig_b, ours_b) = (original_dump(&db.cfg), ours(&db.cfg));
    let mut reaudit = Vec::new();
    mysql_schema::write_reaudit(&mut reaudit, &size, 1.0, 5).unwrap();
    with_tools(|| {
        run_sql(
            &db.cfg,
            Some(&db.name),
            &String::from_utf8(reaudit).unwrap(),
        )
    })
    .unwrap();
    let ours_c = ours(&db.cfg);

    let report = |what: &str, a: &[u8], b: &[u8]| {
        let (lines, bytes) = changed_line_bytes(a, b);
        let total_lines = b.split(|&x| x == b'\n').count();
        let pct = |n: usize| 100.0 * n as f64 / b.len() as f64;
        let cdc: Vec<String> = [4096, 16384, 65536]
            .iter()
            .map(|&avg| {
                let n = changed_chunk_bytes(a, b, avg);
                format!("{}K: {n} B ({:.1}%)", avg / 1024, pct(n))
            })
            .collect();
        eprintln!(
            "{what}\n    size {} B; changed lines {lines}/{total_lines} = {bytes} B ({:.2}%); new FastCDC chunks {}",
            b.len(),
            pct(bytes),
            cdc.join(", ")
        );
    };
    eprintln!("\n== dump stability ({clients} clients) ==");
    report("original options, unchanged data", &orig_a, &orig_same);
    report(
        "ours (+skip-dump-date, order-by-primary), unchanged data",
        &ours_a,
        &ours_same,
    );
    report(
        "original options, 1% scattered row updates + 3 clients inserted mid-table",
        &orig_a,
        &orig_b,
    );
    report(
        "ours, 1% scattered row updates + 3 clients inserted mid-table",
        &ours_a,
        &ours_b,
    );
    report(
        "ours, then 1% of clients re-audited (clustered updates)",
        &ours_b,
        &ours_c,
    );
    let longest = ours_b
        .split(|&x| x == b'\n')
        .map(|l| l.len())
        .max()
        .unwrap();
    eprintln!("longest dump line: {longest} B");
}

/// A dump started ahead of its turn (`create` spools it while the files are backed up) gives
/// the same bytes as the direct one, whether it finished before its turn (added with its size)
/// or is still running (added as it grows), and the spool leaves nothing behind.
#[test]
fn prefetched_dump_is_the_direct_dump() {
    let Some(server) = server() else { return };
    let db = TestDb::create(&server, "prefetch");
    load(
        &db,
        &DataSize {
            clients: 8,
            software_per_client: 20,
            seed: 5,
            ..DataSize::small()
        },
    );
    let spool = tempfile::tempdir().unwrap();
    let opts = DumpOptions::default();
    let mut direct = StreamingSink::default();
    with_tools(|| dump_into(&db.cfg, &opts, member(), &mut direct)).unwrap();
    let want = &direct.members[0].1;
    for wait in [0, 1500] {
        let mut sink = VecSink::default();
        let size = with_tools(|| {
            let p = Prefetch::start(&db.cfg, &opts, "mysql", spool.path())?;
            std::thread::sleep(std::time::Duration::from_millis(wait));
            p.add(member(), &mut sink)
        })
        .unwrap();
        assert_eq!(size, want.len() as u64);
        assert!(sink.members[0].1 == *want, "prefetched dump differs");
    }

    // Still running at its turn: read while it grows.
    let dir = tempfile::tempdir().unwrap();
    let slow = script(
        dir.path(),
        "mysqldump",
        "head -c 300000 /dev/zero | tr '\\0' 'a'\nsleep 1\nhead -c 300000 /dev/zero | tr '\\0' 'b'\n",
    );
    let mut sink = StreamingSink::default();
    {
        let _o = ToolOverride::set(&[("OPSI_BACKUP_MYSQLDUMP", &slow)]);
        let p = Prefetch::start(&db.cfg, &opts, "mysql", spool.path()).unwrap();
        assert_eq!(p.add(member(), &mut sink).unwrap(), 600_000);
    }
    let got = &sink.members[0].1;
    assert!(got[..300_000].iter().all(|&b| b == b'a') && got[300_000..].iter().all(|&b| b == b'b'));
    assert_eq!(
        fs::read_dir(spool.path()).unwrap().count(),
        0,
        "the spool file is visible or left behind"
    );
}

/// Reads a dump to its end, checking every byte, and notes how much disk the spool file under
/// `spool_dir` (unlinked, still open) takes once the last byte is read.
struct SpoolProbe {
    spool_dir: PathBuf,
    len: u64,
    allocated_at_end: Option<u64>,
}

impl SpoolProbe {
    fn read_all(&mut self, content: &mut dyn Read) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = content.read(&mut buf).ctx("reading dump")?;
            if n == 0 {
                break;
            }
            assert!(buf[..n].iter().all(|&b| b == b'd'), "dump bytes changed");
            self.len += n as u64;
        }
        for fd in fs::read_dir("/proc/self/fd").unwrap().flatten() {
            let Ok(target) = fs::read_link(fd.path()) else {
                continue;
            };
            let t = target.to_string_lossy();
            if t.starts_with(&*self.spool_dir.to_string_lossy()) && t.ends_with("(deleted)") {
                self.allocated_at_end = Some(fs::metadata(fd.path()).unwrap().blocks() * 512);
            }
        }
        Ok(())
    }
}

impl MemberSink for SpoolProbe {
    fn add(&mut self, _: &Member, content: &mut dyn Read) -> Result<()> {
        self.read_all(content)
    }
    fn add_unsized(&mut self, _: Member, content: &mut dyn Read) -> Result<u64> {
        self.read_all(content)?;
        Ok(self.len)
    }
}

/// What the backup has read of a prefetched dump is released behind it (holes punched in
/// 16 MiB steps): the spool takes the unread part, not the whole dump, which still reads whole.
#[test]
fn prefetched_spool_is_released_behind_the_reader() {
    let Some(server) = server() else { return };
    let cfg = MysqlConfig {
        database: "opsi".into(),
        ..server.root()
    };
    let spool = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    const LEN: u64 = 48_000_000;
    let fake = script(
        dir.path(),
        "mysqldump",
        &format!("head -c {LEN} /dev/zero | tr '\\0' 'd'\n"),
    );
    // Read while it grows (at once) and after it has finished (the whole dump spooled).
    for wait in [0, 1500] {
        let mut probe = SpoolProbe {
            spool_dir: spool.path().to_path_buf(),
            len: 0,
            allocated_at_end: None,
        };
        {
            let _o = ToolOverride::set(&[("OPSI_BACKUP_MYSQLDUMP", &fake)]);
            let p = Prefetch::start(&cfg, &DumpOptions::default(), "mysql", spool.path()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(wait));
            assert_eq!(p.add(member(), &mut probe).unwrap(), LEN);
        }
        assert_eq!(probe.len, LEN);
        let allocated = probe
            .allocated_at_end
            .expect("the spool file is open while read");
        // 48 MB read: released up to 32 MiB, the last 14.4 MB are left.
        assert!(
            allocated < 20_000_000,
            "the spool still takes {allocated} bytes after {LEN} were read"
        );
    }
}

/// mysqldump runs under coreutils' `stdbuf` with a 1 MiB stdout buffer where `stdbuf` is
/// installed (fewer writes into the spool), with its arguments unchanged.
#[test]
fn mysqldump_output_is_buffered_when_stdbuf_is_installed() {
    let Some(server) = server() else { return };
    let cfg = MysqlConfig {
        database: "opsi".into(),
        ..server.root()
    };
    let dir = tempfile::tempdir().unwrap();
    // The variable stdbuf hands to its preload library; the arguments must pass unchanged.
    let fake = script(
        dir.path(),
        "mysqldump",
        "printf 'buffer=%s\\n' \"$_STDBUF_O\"\nprintf '%s\\n' \"$@\"\n",
    );
    let mut sink = VecSink::default();
    {
        let _o = ToolOverride::set(&[("OPSI_BACKUP_MYSQLDUMP", &fake)]);
        dump_into(&cfg, &DumpOptions::default(), member(), &mut sink).unwrap();
    }
    let out = String::from_utf8(sink.members.remove(0).1).unwrap();
    let args: Vec<&str> = out.lines().skip(1).collect();
    assert!(args[0].starts_with("--defaults-file="), "{out}");
    assert_eq!(args.last(), Some(&"opsi"), "{out}");
    let buffer = if opsi_backup::mysql::tools::on_path("stdbuf").is_some() {
        "1048576"
    } else {
        ""
    };
    assert!(out.starts_with(&format!("buffer={buffer}\n")), "{out}");
}

/// A prefetched dump that fails fails the same way as a direct one and stores nothing; one
/// that is dropped before its turn (the backup failed earlier) stops mysqldump.
#[test]
fn prefetched_dump_failures() {
    let Some(server) = server() else { return };
    let cfg = MysqlConfig {
        database: "opsi".into(),
        password: NASTY_PASSWORD.into(),
        ..server.root()
    };
    let spool = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fake = failing_mysqldump(
        dir.path(),
        "echo 'mysqldump: Error 2013: Lost connection to server during query' >&2\nexit 3",
    );
    for wait in [0, 1000] {
        let mut sink = VecSink::default();
        let err = {
            let _o = ToolOverride::set(&[("OPSI_BACKUP_MYSQLDUMP", &fake)]);
            let p = Prefetch::start(&cfg, &DumpOptions::default(), "mysql", spool.path()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(wait));
            p.add(member(), &mut sink).unwrap_err()
        };
        check_fake_run(dir.path());
        assert_mysql_error(
            &err,
            &[
                "mysqldump failed for backend mysql:",
                "Lost connection",
                "exit status 3",
            ],
        );
        assert!(sink.members.is_empty(), "a truncated dump was stored");
    }

    // mysqldump writing into the spool file on a full disk says only "errno 28" (its
    // check_io); the error says what that means.
    let full = failing_mysqldump(
        dir.path(),
        "echo 'mysqldump: Got errno 28 on write' >&2\nexit 5",
    );
    let err = {
        let _o = ToolOverride::set(&[("OPSI_BACKUP_MYSQLDUMP", &full)]);
        let p = Prefetch::start(&cfg, &DumpOptions::default(), "mysql", spool.path()).unwrap();
        p.add(member(), &mut VecSink::default()).unwrap_err()
    };
    assert_mysql_error(
        &err,
        &[
            "mysqldump failed for backend mysql:",
            "errno 28",
            "exit status 5",
            "the disk holding its spool file",
            "is full",
        ],
    );

    // (Throttled: the dump goes straight into the spool file, and `yes` would fill a disk.)
    let forever = pid_recording_mysqldump(
        dir.path(),
        "while :; do echo 'INSERT INTO t VALUES (1);'; sleep 0.01; done",
    );
    {
        let _o = ToolOverride::set(&[("OPSI_BACKUP_MYSQLDUMP", &forever)]);
        let p = Prefetch::start(&cfg, &DumpOptions::default(), "mysql", spool.path()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(p);
    }
    assert_not_running(dir.path());

    // A mysqldump that writes nothing (waiting for a table lock) is killed, not waited for.
    let stuck = pid_recording_mysqldump(dir.path(), "exec sleep 600");
    let t = std::time::Instant::now();
    {
        let _o = ToolOverride::set(&[("OPSI_BACKUP_MYSQLDUMP", &stuck)]);
        let p = Prefetch::start(&cfg, &DumpOptions::default(), "mysql", spool.path()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(p);
    }
    assert!(t.elapsed().as_secs() < 30, "dropping waited for mysqldump");
    assert_not_running(dir.path());
}

const ORPHAN_DIR_ENV: &str = "OPSI_BACKUP_TEST_ORPHAN_DIR";

/// The child of `killed_backup_leaves_no_mysqldump`: starts a prefetched dump (the fake
/// mysqldump named by the environment) and waits to be killed. Does nothing on its own.
#[test]
#[ignore = "run by killed_backup_leaves_no_mysqldump"]
fn prefetch_then_wait() {
    let Some(dir) = std::env::var_os(ORPHAN_DIR_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let cfg = MysqlConfig {
        address: "/nonexistent/mysqld.sock".into(),
        database: "opsi".into(),
        username: "opsi".into(),
        password: "secret".into(),
    };
    let _dump = Prefetch::start(&cfg, &DumpOptions::default(), "mysql", &dir).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(600));
}

/// A backup killed with -9 while its dump runs ahead (mysqldump writing into the spool file,
/// not a pipe that would break) takes mysqldump with it: nothing goes on holding the tables.
#[test]
fn killed_backup_leaves_no_mysqldump() {
    let dir = tempfile::tempdir().unwrap();
    let fake = pid_recording_mysqldump(dir.path(), "exec sleep 600");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "prefetch_then_wait",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ORPHAN_DIR_ENV, dir.path())
        .env("OPSI_BACKUP_MYSQLDUMP", &fake)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid_file = dir.path().join("pid");
    let waited = std::time::Instant::now();
    while fs::read_to_string(&pid_file).map_or(true, |p| !p.ends_with('\n')) {
        assert!(waited.elapsed().as_secs() < 60, "mysqldump never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = fs::read_to_string(&pid_file).unwrap();
    let proc_dir = PathBuf::from(format!("/proc/{}", pid.trim()));
    assert!(proc_dir.exists(), "the fake mysqldump is not running");
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = std::time::Instant::now();
    // Gone, or a zombie waiting for init to reap it.
    let alive = || {
        fs::read_to_string(proc_dir.join("stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| !r.trim_start().starts_with('Z'))
        })
    };
    while alive() {
        assert!(
            killed.elapsed().as_secs() < 10,
            "mysqldump outlived the killed backup"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
