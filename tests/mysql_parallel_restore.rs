//! The parallel load of a restore (issue 22) against a real MariaDB: the same end state as the
//! serial `mysql db < dump`, a clear error when a statement fails half-way, and the serial
//! path for dumps of another shape. See tests/mysql_backend.rs for `OPSI_BACKUP_TEST_MYSQL`.

#[path = "common/mysql_env.rs"]
mod mysql_env;
#[path = "common/mysql_schema.rs"]
mod mysql_schema;

use std::io::Read;
use std::process::{Command, Stdio};

use mysql_env::{server, with_tools, TestDb, TestServer};
use mysql_schema::{database_sql, DataSize};
use opsi_backup::error::{Error, IoContext, Result};
use opsi_backup::member::{Member, MemberKind, Mtime};
use opsi_backup::mysql::{dump_into, restore_with, run_sql, DumpOptions, MysqlConfig};
use opsi_backup::sink::MemberSink;

/// Objects of every kind, and data full of what a statement splitter could trip on.
const EXTRA: &str = r#"
CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(200)) ENGINE=InnoDB;
CREATE TABLE child (id INT PRIMARY KEY AUTO_INCREMENT, pid INT, note TEXT, b BLOB,
  FOREIGN KEY (pid) REFERENCES parent(id)) ENGINE=InnoDB;
CREATE TABLE `we;ird``name` (x INT, s VARCHAR(100));
CREATE TABLE big (id INT PRIMARY KEY, s TEXT, b BLOB, n INT NULL, KEY (n)) ENGINE=InnoDB;
CREATE TABLE empty_one (id INT PRIMARY KEY) ENGINE=InnoDB;
CREATE TABLE log (id INT PRIMARY KEY AUTO_INCREMENT, what VARCHAR(100));
INSERT INTO parent VALUES (0, 'zero; with NO_AUTO_VALUE_ON_ZERO'), (1,'a;b'),
  (2,'it''s \\ -- Dumping data for table `x`;\n-- Table structure for table `y`'),
  (3, NULL), (4, '/* not a comment */ /*!40101 nor this */; DELIMITER ;;'), (5, '#;"q\";');
INSERT INTO child (pid,note,b) VALUES (1,'x\n/*!40000 ALTER */;', 0x00FF275C0A0D1A22),
  (2,NULL,NULL), (4, 'UNLOCK TABLES;', '');
INSERT INTO `we;ird``name` VALUES (1, '`;`'), (NULL, NULL);
INSERT INTO big SELECT seq, REPEAT(CONCAT('v;\'\\"-- Dumping data for table `big`\n', seq), 12),
  UNHEX(SHA2(seq, 256)), IF(seq % 7 = 0, NULL, seq % 100) FROM seq_1_to_6000;
CREATE TABLE types (id INT PRIMARY KEY AUTO_INCREMENT, f FLOAT, d DOUBLE, de DECIMAL(20,6),
  dt DATETIME(3), ts TIMESTAMP NULL, tm TIME, y YEAR, e ENUM('a','b'), st SET('x','y'),
  u VARCHAR(50) CHARACTER SET utf8mb4, l VARCHAR(50) CHARACTER SET latin1, c CHAR(5),
  bin VARBINARY(20), KEY (l)) ENGINE=InnoDB;
INSERT INTO types VALUES (1, 1.5e-7, -0.0, 12345678901234.123456, '2024-02-29 23:59:59.999',
  '2038-01-19 03:14:07', '-838:59:59', 1901, 'b', 'x,y', 'emoji 😀 \% \_ tab	here',
  'äöü ß', 'ab  ', 'a\0b\Zc\rd'),
  (2, 3.4028234e38, 1.7976931348623157e308, -0.000001, '0000-00-00 00:00:00', NULL,
  '00:00:00', 0, 'a', '', '', '', '', ''),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'NULL', '\\N', 'N', 'NULL'),
  (0, -1, 2.5, 0, '1000-01-01', '1970-01-01 00:00:01', '12:00', 2155, 'a', 'y',
  'line\nbreak\r\n', '\'quoted\'', '"', 0x000102FF5C27220A0D091A);
CREATE TABLE bits (id INT PRIMARY KEY, b BIT(5), g INT AS (id * 2) VIRTUAL) ENGINE=InnoDB;
INSERT INTO bits (id, b) VALUES (1, b'10101'), (2, NULL);
CREATE VIEW v AS SELECT p.name, c.note FROM parent p JOIN child c ON c.pid = p.id;
CREATE VIEW v2 AS SELECT COUNT(*) AS n FROM v;
CREATE TRIGGER trg BEFORE INSERT ON child FOR EACH ROW
  INSERT INTO log (what) VALUES (CONCAT('child;', NEW.id));
CREATE TRIGGER trg2 AFTER UPDATE ON big FOR EACH ROW SET @x = 1;
CREATE PROCEDURE pr() BEGIN SELECT 1; SELECT ';'; END;
CREATE FUNCTION fn(x INT) RETURNS INT DETERMINISTIC RETURN x + 1;
"#;

/// A source database: the opsi-like test data plus [`EXTRA`]. Objects are created and loaded
/// as root, so their DEFINER exists wherever they are restored.
fn source(server: &TestServer) -> (TestDb, MysqlConfig) {
    let db = TestDb::create(server, "prsrc");
    let cfg = root_cfg(server, &db);
    let mut sql = database_sql(&DataSize::small());
    sql.extend_from_slice(b"\nDELIMITER //\n");
    sql.extend_from_slice(EXTRA.replace(";\n", "//\n").as_bytes());
    sql.extend_from_slice(b"DELIMITER ;\n");
    with_tools(|| restore_with(&cfg, &mut &sql[..], 1)).expect("loading the source");
    (db, cfg)
}

fn root_cfg(server: &TestServer, db: &TestDb) -> MysqlConfig {
    let mut cfg = server.root();
    cfg.database = db.name.clone();
    cfg
}

/// Everything that must be equal after a restore, the database's name replaced by `DB`:
/// every table's CHECKSUM TABLE and SHOW CREATE, views, triggers, routines.
fn state(cfg: &MysqlConfig) -> String {
    let sql = |q: &str| with_tools(|| run_sql(cfg, Some(&cfg.database), q)).expect(q);
    let mut out = String::new();
    let tables = sql(
        "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1",
    );
    for line in tables.lines() {
        let (name, kind) = line.split_once('\t').unwrap();
        let q = format!("`{}`", name.replace('`', "``"));
        out.push_str(&format!("== {name} {kind}\n"));
        if kind == "VIEW" {
            out.push_str(&sql(&format!("SHOW CREATE VIEW {q}")));
        } else {
            out.push_str(&sql(&format!("SHOW CREATE TABLE {q}")));
            out.push_str(&sql(&format!("CHECKSUM TABLE {q} EXTENDED")));
            out.push_str(&sql(&format!("SELECT COUNT(*) FROM {q}")));
        }
    }
    out.push_str(&sql(
        "SELECT TRIGGER_NAME, EVENT_MANIPULATION, EVENT_OBJECT_TABLE, ACTION_TIMING, \
         ACTION_STATEMENT, SQL_MODE, DEFINER FROM information_schema.TRIGGERS \
         WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY 1",
    ));
    out.push_str(&sql(
        "SELECT ROUTINE_NAME, ROUTINE_TYPE, ROUTINE_DEFINITION, SQL_MODE, DEFINER \
         FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY 1",
    ));
    out.replace(&cfg.database, "DB")
}

/// Keeps the member in memory.
#[derive(Default)]
struct VecSink(Vec<u8>);

impl MemberSink for VecSink {
    fn add(&mut self, _: &Member, content: &mut dyn Read) -> Result<()> {
        content.read_to_end(&mut self.0).ctx("reading member")?;
        Ok(())
    }
}

/// The dump a backup stores (`dump_into`, the product's options).
fn backup_dump(cfg: &MysqlConfig) -> Vec<u8> {
    let member = Member {
        path: "CONTENT/BACKENDS/MYSQL/mysql/database.sql".into(),
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
    };
    let mut sink = VecSink::default();
    with_tools(|| dump_into(cfg, &DumpOptions::default(), member, &mut sink)).expect("dump");
    sink.0
}

/// mysqldump with routines and events as well (a dump with a DELIMITER-laden trailer).
fn dump_with_routines(server: &TestServer, cfg: &MysqlConfig) -> Vec<u8> {
    let mut c = Command::new("mysqldump");
    c.arg("--no-defaults")
        .arg(format!("--user={}", server.user));
    if let Some(socket) = cfg.address.strip_prefix('/') {
        c.arg(format!("--socket=/{socket}"));
    } else {
        c.arg(format!("--host={}", cfg.address));
    }
    if !server.password.is_empty() {
        c.arg(format!("--password={}", server.password));
    }
    c.args([
        "--lock-tables",
        "--add-drop-table",
        "--skip-dump-date",
        "--order-by-primary",
        "--routines",
        "--events",
    ])
    .arg(&cfg.database)
    .stderr(Stdio::inherit());
    let out = with_tools(|| c.output()).expect("running mysqldump");
    assert!(out.status.success(), "mysqldump failed");
    out.stdout
}

/// Restores `dump` serially and over 4 connections into two new databases; both must equal
/// `expected`.
fn restore_both_ways(server: &TestServer, dump: &[u8], expected: &str) {
    for connections in [1, 4, 2] {
        let db = TestDb::create(server, "prdst");
        let cfg = root_cfg(server, &db);
        with_tools(|| restore_with(&cfg, &mut &dump[..], connections))
            .unwrap_or_else(|e| panic!("restore over {connections}: {e}"));
        let got = state(&cfg);
        assert!(
            got == expected,
            "restore over {connections} connection(s) differs:\n{}",
            first_difference(expected, &got)
        );
    }
}

fn first_difference(a: &str, b: &str) -> String {
    let (la, lb): (Vec<_>, Vec<_>) = (a.lines().collect(), b.lines().collect());
    for i in 0..la.len().max(lb.len()) {
        if la.get(i) != lb.get(i) {
            return format!(
                "line {i}: expected {:?}\n got {:?}",
                la.get(i).map(|l| &l[..l.len().min(300)]),
                lb.get(i).map(|l| &l[..l.len().min(300)])
            );
        }
    }
    String::new()
}

#[test]
fn parallel_restore_equals_serial_restore() {
    let Some(server) = server() else { return };
    let (_src, cfg) = source(&server);
    let expected = state(&cfg);
    for needle in [
        "== v VIEW",
        "== v2 VIEW",
        "trg\tINSERT\tchild",
        "trg2",
        "fn\tFUNCTION",
    ] {
        assert!(expected.contains(needle), "{needle} missing in\n{expected}");
    }

    // The product's dump has no routines: the restores have none either.
    let dump = backup_dump(&cfg);
    assert!(dump.windows(16).any(|w| w == b"-- Dumping data "));
    let db = TestDb::create(&server, "prdst");
    let dst = root_cfg(&server, &db);
    with_tools(|| restore_with(&dst, &mut &dump[..], 1)).unwrap();
    let serial = state(&dst);
    assert!(!serial.contains("FUNCTION"), "{serial}");
    restore_both_ways(&server, &dump, &serial);

    // With routines and events: the trailer (DELIMITER blocks) after all tables. (The
    // serial load is the reference: mysqldump and mysql do not give every value back, e.g. a
    // FLOAT column's value is dumped with fewer digits than it holds.)
    let dump = dump_with_routines(&server, &cfg);
    assert!(dump.windows(9).any(|w| w == b"DELIMITER"));
    let serial = state_of_sql(&server, &dump);
    for needle in ["trg\tINSERT\tchild", "fn\tFUNCTION"] {
        assert!(serial.contains(needle), "{needle} missing in\n{serial}");
    }
    restore_both_ways(&server, &dump, &serial);
}

/// Rows go as `LOAD DATA` when they can, and the server's own reading of them decides: a
/// duplicate key, which `LOAD DATA LOCAL` would skip with a warning, fails the restore as the
/// dump's INSERT does in the original's serial load.
#[test]
fn rows_by_load_data_are_checked_by_the_server_count() {
    let Some(server) = server() else { return };
    let (_src, cfg) = source(&server);
    let dump = backup_dump(&cfg);
    let db = TestDb::create(&server, "prdst");
    let dst = root_cfg(&server, &db);
    let loaded = with_tools(|| restore_with(&dst, &mut &dump[..], 2)).unwrap();
    // The dump's rows as the server counts them: every batch taken, none rolled back.
    assert!(loaded.load_data > 0, "{loaded:?}");
    assert_eq!(loaded.rolled_back, 0, "{loaded:?}");
    // A serial load sends no LOAD DATA.
    let db1 = TestDb::create(&server, "prdst1");
    let serial = with_tools(|| restore_with(&root_cfg(&server, &db1), &mut &dump[..], 1)).unwrap();
    assert_eq!(serial, Default::default());
    let parallel = state(&dst);
    assert_eq!(parallel, state_of_sql(&server, &dump));

    // A row of `big` twice, in its last INSERT: the table is not empty any more, so the
    // server checks the key at once (1062); `LOAD DATA LOCAL` alone would skip the row with a
    // warning and the restore would "succeed".
    let mut dup = dump.clone();
    let at = rfind(&dup, b"\n(5999,").expect("big's row 5999") + 1;
    dup.splice(at..at, b"(1,'dup','',NULL),".iter().copied());
    // The same into an empty table (`parent`, one INSERT): MariaDB sorts such a first
    // insert and finds the duplicate only at its commit (error 1180); nothing of it stays.
    let mut first = dump.clone();
    let at = find(&first, b"(1,'a;b')").expect("parent's row 1");
    first.splice(at..at, b"(1,'dup'),".iter().copied());
    for connections in [1, 2] {
        for (dump, table) in [(&dup, "big"), (&first, "parent")] {
            let db = TestDb::create(&server, "prdup");
            let dst = root_cfg(&server, &db);
            let err = with_tools(|| restore_with(&dst, &mut &dump[..], connections)).unwrap_err();
            let text = err.to_string();
            let code = if table == "big" {
                "ERROR 1062"
            } else {
                "ERROR 1180"
            };
            assert!(text.contains(code), "{connections}, {table}: {text}");
            let sql = |q: &str| with_tools(|| run_sql(&dst, Some(&dst.database), q)).unwrap();
            let q = if table == "big" {
                "SELECT COUNT(*) FROM big WHERE s = 'dup'"
            } else {
                "SELECT COUNT(*) FROM parent"
            };
            assert_eq!(sql(q).trim(), "0", "{connections}, {table}");
        }
    }
}

#[test]
fn failure_half_way_names_the_table_and_the_state() {
    let Some(server) = server() else { return };
    let (_src, cfg) = source(&server);
    let mut dump = backup_dump(&cfg);
    // Break the one INSERT of `child`, a table in the middle of the dump (the statement is
    // still an INSERT into `child` for the splitter, the server refuses it).
    let at = find(&dump, b"INSERT INTO `child` VALUES").expect("child's rows");
    let at = at + "INSERT INTO `child` ".len();
    dump.splice(at..at + 6, b"VALUEZ".iter().copied());
    let db = TestDb::create(&server, "prfail");
    let dst = root_cfg(&server, &db);
    let started = std::time::Instant::now();
    let err = with_tools(|| restore_with(&dst, &mut &dump[..], 3)).unwrap_err();
    let Error::Mysql(text) = &err else {
        panic!("expected a MySQL error, got {err:?}")
    };
    for needle in [
        "Failed to restore MySQL backend: loading table `child` failed:",
        "ERROR 1064",
        "All connections were stopped",
        &format!("Database '{}' is left partly restored", dst.database),
        "incomplete (rows or triggers missing): ",
        "`child`",
        "Run the restore again",
    ] {
        assert!(text.contains(needle), "{needle:?} missing in {text}");
    }
    eprintln!("{text}");
    assert!(started.elapsed().as_secs() < 60);
    // The tables before `child` in the dump are there, `child` has no rows.
    let sql = |q: &str| with_tools(|| run_sql(&dst, Some(&dst.database), q)).unwrap();
    assert_eq!(sql("SELECT COUNT(*) FROM `big`").trim(), "6000");
    assert_eq!(sql("SELECT COUNT(*) FROM `child`").trim(), "0");
}

#[test]
fn unexpected_statements_are_loaded_serially() {
    let Some(server) = server() else { return };
    let (_src, cfg) = source(&server);
    let dump = backup_dump(&cfg);
    let db = TestDb::create(&server, "prdst");
    let dst = root_cfg(&server, &db);
    with_tools(|| restore_with(&dst, &mut &dump[..], 1)).unwrap();
    let expected = state(&dst);

    // A statement the splitter does not know, between two tables, and one inside a table's
    // section: everything from there on is loaded on one connection, the result is the same.
    for (marker, extra) in [
        (
            &b"--\n-- Table structure for table `child`"[..],
            &b"DO 1;\n"[..],
        ),
        (b"LOCK TABLES `parent` WRITE;", b"\nDO 2;"),
        (b"DELIMITER ;;", b"DO 3;\n"),
        // A global SET in the header: not replayed on every connection.
        (
            b"/*!40101 SET NAMES utf8mb4 */;",
            b"\n/*!40101 SET @@GLOBAL.max_connect_errors=@@GLOBAL.max_connect_errors */;",
        ),
    ] {
        let mut changed = dump.clone();
        let at = find(&changed, marker).expect("marker")
            + if extra[0] == b'\n' { marker.len() } else { 0 };
        changed.splice(at..at, extra.iter().copied());
        restore_both_ways(&server, &changed, &expected);
    }
    // Not mysqldump's output at all: the generator's SQL.
    let sql = database_sql(&DataSize::small());
    restore_both_ways(&server, &sql, &state_of_sql(&server, &sql));
}

/// A header that turns backslash escapes off (here plainly; `SET SQL_MODE=@x` would hide it
/// from any reading of the text): the INSERTs' strings then mean other bytes than the
/// conversion to `LOAD DATA` assumes, and the server's answer sends them as INSERTs.
#[test]
fn rows_are_loaded_as_the_session_reads_them() {
    let Some(server) = server() else { return };
    let src = TestDb::create(&server, "prsql");
    let cfg = root_cfg(&server, &src);
    let sql = r"CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(50)) ENGINE=InnoDB;
INSERT INTO t VALUES (1, 'a\\nb'), (2, 'x\ny'), (3, 'tab\there');";
    with_tools(|| restore_with(&cfg, &mut sql.as_bytes(), 1)).expect("loading the source");
    let mut dump = backup_dump(&cfg);
    let at = find(&dump, b"--\n-- Table structure for table").expect("a table section");
    let set = b"/*!40101 SET SQL_MODE='NO_AUTO_VALUE_ON_ZERO,NO_BACKSLASH_ESCAPES' */;\n\n";
    dump.splice(at..at, set.iter().copied());
    let serial = state_of_sql(&server, &dump);
    restore_both_ways(&server, &dump, &serial);
    let db = TestDb::create(&server, "prses");
    let loaded = with_tools(|| restore_with(&root_cfg(&server, &db), &mut &dump[..], 2)).unwrap();
    assert!(
        loaded.load_data == 0 && loaded.rolled_back > 0,
        "{loaded:?}"
    );
}

fn state_of_sql(server: &TestServer, sql: &[u8]) -> String {
    let db = TestDb::create(server, "prdst");
    let cfg = root_cfg(server, &db);
    with_tools(|| restore_with(&cfg, &mut &sql[..], 1)).unwrap();
    state(&cfg)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

/// The load really goes over the connections asked for: `mysql` (a wrapper recording its
/// arguments) runs once to recreate the database, once per connection, and once for the
/// trailer (the final views).
#[test]
fn loads_over_the_connections_asked_for() {
    let Some(server) = server() else { return };
    let (_src, cfg) = source(&server);
    let dump = backup_dump(&cfg);
    let db = TestDb::create(&server, "prdst");
    let dst = root_cfg(&server, &db);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs");
    let real = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join("mysql"))
        .find(|p| p.is_file())
        .expect("mysql on PATH");
    let wrapper = dir.path().join("mysql");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A global SET in the header must not run once per connection: serial load.
    let mut global = dump.clone();
    let at = find(&global, b"/*!40101 SET NAMES utf8mb4 */;").unwrap();
    let set = b"/*!40101 SET @@GLOBAL.max_connect_errors=@@GLOBAL.max_connect_errors */;\n";
    global.splice(at..at, set.iter().copied());
    let runs = |dump: &[u8]| {
        let _ = std::fs::remove_file(&log);
        {
            let _tools = mysql_env::ToolOverride::set(&[("OPSI_BACKUP_MYSQL", &wrapper)]);
            restore_with(&dst, &mut &dump[..], 3).unwrap();
        }
        std::fs::read_to_string(&log).unwrap()
    };
    let parallel = runs(&dump);
    // The database recreated, LOAD DATA LOCAL tried, 3 connections, the trailer.
    assert_eq!(parallel.lines().count(), 1 + 1 + 3 + 1, "{parallel}");
    assert_eq!(parallel.matches("--unbuffered").count(), 3, "{parallel}");
    assert_eq!(
        parallel.matches("--local-infile=1").count(),
        1 + 3,
        "{parallel}"
    );
    assert!(state(&dst).contains("trg\tINSERT\tchild"));
    let serial = runs(&global);
    assert_eq!(serial.lines().count(), 2, "{serial}");
    assert!(!serial.contains("--unbuffered"), "{serial}");
}

/// A dump that cannot be read to its end (a damaged archive): the connections are stopped,
/// the error says so and what is left.
#[test]
fn unreadable_dump_stops_the_connections() {
    struct Failing<'a>(&'a [u8]);
    impl Read for Failing<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Err(std::io::Error::other("archive damaged"));
            }
            let n = buf.len().min(self.0.len()).min(4096);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let Some(server) = server() else { return };
    let (_src, cfg) = source(&server);
    let dump = backup_dump(&cfg);
    let half = find(&dump, b"INSERT INTO `big`").unwrap() + 1_500_000;
    let db = TestDb::create(&server, "prdst");
    let dst = root_cfg(&server, &db);
    let err = with_tools(|| restore_with(&dst, &mut Failing(&dump[..half]), 2)).unwrap_err();
    let text = err.to_string();
    for needle in [
        "archive damaged",
        "All connections were stopped",
        "`big`",
        "left partly restored",
    ] {
        assert!(text.contains(needle), "{needle:?} missing in {text}");
    }
}
