//! The MySQL backend end to end through the command line against the real MariaDB:
//! create (mysqldump streamed into the archive) -> drop -> restore -> the same rows; and a
//! failing mysqldump fails the whole create, leaves no archive and never shows the password.
//! Needs OPSI_BACKUP_TEST_MYSQL (see tests/common/mysql_env.rs): fails without it, unless
//! OPSI_BACKUP_SKIP_MYSQL=1 skips it knowingly (and says so).

mod common;
#[path = "common/mysql_env.rs"]
mod mysql_env;
#[path = "common/mysql_schema.rs"]
mod mysql_schema;

use common::fake_server::{write, FakeServer};
use common::{bin, ok, run};
use mysql_env::{server, with_tools, TestDb, NASTY_PASSWORD};
use mysql_schema::{database_sql, DataSize, TABLES};
use opsi_backup::mysql::{restore_from, run_sql, MysqlConfig};

fn py_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Points the fake server's mysql.conf at `cfg` and puts mysql into dispatch.conf.
fn use_mysql(server: &FakeServer, cfg: &MysqlConfig) {
    let conf = format!(
        "module = 'MySQL'\nconfig = {{\n    \"address\": {},\n    \"database\": {},\n    \"username\": {},\n    \"password\": {},\n    \"databaseCharset\": \"utf8\",\n}}\n",
        py_str(&cfg.address),
        py_str(&cfg.database),
        py_str(&cfg.username),
        py_str(&cfg.password)
    );
    write(
        &server.p("/etc/opsi/backends/mysql.conf"),
        conf,
        0o600,
        1_732_000_000,
    );
    write(
        &server.p("/etc/opsi/backendManager/dispatch.conf"),
        "backend_.* : mysql, dhcpd\n.* : mysql\n",
        0o644,
        1_732_000_000,
    );
}

fn fingerprint(cfg: &MysqlConfig) -> String {
    let sql: String = TABLES
        .iter()
        .map(|t| format!("SELECT '{t}', COUNT(*) FROM `{t}`; CHECKSUM TABLE `{t}` EXTENDED;\n"))
        .collect();
    with_tools(|| run_sql(cfg, Some(&cfg.database), &sql)).expect("fingerprint")
}

#[test]
fn mysql_backend_create_drop_restore_gives_the_same_rows() {
    let Some(srv) = server() else { return };
    let db = TestDb::create(&srv, "cli");
    let sql = database_sql(&DataSize::small());
    with_tools(|| restore_from(&db.cfg, &mut &sql[..])).expect("loading test data");
    let before = fingerprint(&db.cfg);
    assert!(before.contains("HOST"), "{before}");

    let fake = FakeServer::new(3, false);
    use_mysql(&fake, &db.cfg);
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("mysql.tar.gz");
    let create = with_tools(|| run(bin(fake.root()).args(["create", "-c", "gz"]).arg(&archive)));
    assert_eq!(create.0, 0, "{create:?}");
    let listed = ok(bin(fake.root()).arg("list").arg(&archive));
    assert!(
        listed
            .trim()
            .ends_with("contains: configuration, dhcp, mysql"),
        "{listed}"
    );

    db.root_sql(&format!(
        "DROP DATABASE `{}`; CREATE DATABASE `{}`;",
        db.name, db.name
    ));
    assert_ne!(fingerprint_or_empty(&db.cfg), before);
    let restored = with_tools(|| {
        run(bin(fake.root())
            .args(["restore", "--backends", "mysql"])
            .arg(&archive))
    });
    assert_eq!(restored.0, 0, "{restored:?}");
    assert_eq!(fingerprint(&db.cfg), before);
}

fn fingerprint_or_empty(cfg: &MysqlConfig) -> String {
    with_tools(|| run_sql(cfg, Some(&cfg.database), "SHOW TABLES;")).unwrap_or_default()
}

#[test]
fn failing_mysqldump_fails_create_and_leaves_nothing() {
    let Some(srv) = server() else { return };
    let db = TestDb::create(&srv, "clifail");
    let fake = FakeServer::new(2, false);
    let mut wrong = db.cfg.clone();
    wrong.password = format!("{NASTY_PASSWORD}-wrong");
    use_mysql(&fake, &wrong);
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("x.tar.bz2");
    let (code, _, err) = with_tools(|| {
        run(bin(fake.root())
            .args(["create", "--backends", "mysql"])
            .arg(&archive))
    });
    assert_eq!(code, 1);
    assert!(
        err.contains("mysqldump failed for backend mysql") && err.contains("Access denied"),
        "{err}"
    );
    assert!(
        !err.contains(&wrong.password) && !err.contains("pä'ss"),
        "password leaked: {err}"
    );
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "no archive, no temporary file"
    );
}

/// Two nightly snapshots of the MySQL backend: `diff` names the tables whose rows changed.
#[test]
fn diff_names_changed_tables() {
    let Some(srv) = server() else { return };
    let db = TestDb::create(&srv, "diff");
    let sql = database_sql(&DataSize::small());
    with_tools(|| restore_from(&db.cfg, &mut &sql[..])).expect("loading test data");
    let fake = FakeServer::new(2, false);
    use_mysql(&fake, &db.cfg);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let rb = || {
        let mut c = bin(fake.root());
        c.env("OPSI_BACKUP_REPOSITORY", &repo);
        c
    };
    ok(rb().arg("init"));
    let (code, _, err) = with_tools(|| run(rb().args(["create", "--backends", "mysql"])));
    assert_eq!(code, 0, "{err}");
    db.root_sql("UPDATE HOST SET description = 'changed' LIMIT 1;");
    let (code, _, err) = with_tools(|| run(rb().args(["create", "--backends", "mysql"])));
    assert_eq!(code, 0, "{err}");
    let snaps: serde_json::Value =
        serde_json::from_str(&ok(rb().args(["snapshots", "--json"]))).unwrap();
    let a = snaps[0]["id"].as_str().unwrap()[..10].to_string();
    let out = ok(rb().args(["diff", &a, "latest"]));
    assert!(
        out.contains("M  table HOST in CONTENT/BACKENDS/MYSQL/mysql/database.sql"),
        "{out}"
    );
    assert!(out.contains("1 tables changed"), "{out}");
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut hits = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return hits;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            hits.extend(files_containing(&p, needle));
        } else if std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)) {
            hits.push(p);
        }
    }
    hits
}

/// A create killed with -9 in the middle of its dump leaves no file holding the password in
/// its temporary directory, and no mysqldump running on.
#[test]
fn killed_create_leaves_no_password_file_and_no_mysqldump() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let Some(srv) = server() else { return };
    let db = TestDb::create(&srv, "kill");
    db.root_sql("CREATE TABLE held (x INT); INSERT INTO held VALUES (1);");
    let fake = FakeServer::new(2, false);
    use_mysql(&fake, &db.cfg);
    let work = tempfile::tempdir().unwrap();
    let tmp = work.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    // mysqldump blocks on the table another session holds: the kill lands mid-dump.
    let root = srv.root();
    let address = if root.address.starts_with('/') {
        format!("--socket={}", root.address)
    } else {
        format!("--host={}", root.address)
    };
    let mut holder = Command::new("mysql")
        .arg(address)
        .arg(format!("--user={}", root.username))
        .arg(format!("--password={}", root.password))
        .arg(&db.name)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut sql = holder.stdin.take().unwrap();
    writeln!(sql, "LOCK TABLES held WRITE; SELECT 'locked';").unwrap();
    sql.flush().unwrap();
    let pid_file = work.path().join("mysqldump.pid");
    let wrapper = work.path().join("mysqldump");
    let real = which("mysqldump");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho $$ > '{}'\nexec '{}' \"$@\"\n",
            pid_file.display(),
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let archive = work.path().join("out.tar.gz");
    let mut create = bin(fake.root())
        .env("TMPDIR", &tmp)
        .env("OPSI_BACKUP_MYSQLDUMP", &wrapper)
        .args(["create", "-c", "gz", "--backends", "mysql"])
        .arg(&archive)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let dump_pid: i32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "mysqldump never started");
        assert!(create.try_wait().unwrap().is_none(), "create ended early");
        std::thread::sleep(Duration::from_millis(20));
    };
    // Let it connect and reach the held table.
    std::thread::sleep(Duration::from_millis(700));
    // An option file escapes `\` and `"`: look for the longest piece without them.
    let needle = db
        .cfg
        .password
        .split(['\\', '"'])
        .max_by_key(|p| p.len())
        .unwrap()
        .to_string();
    assert!(needle.len() >= 8, "{needle:?}");
    let before_kill = files_containing(&tmp, needle.as_bytes());
    create.kill().unwrap();
    create.wait().unwrap();
    let alive = |pid: i32| {
        std::path::Path::new(&format!("/proc/{pid}")).exists() && {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            !stat.contains(") Z ")
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(dump_pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let survived = alive(dump_pid);
    let after_kill = files_containing(&tmp, needle.as_bytes());
    drop(sql);
    holder.wait().unwrap();
    if survived {
        // SAFETY: killing the stray mysqldump this test started, by its pid.
        unsafe { libc::kill(dump_pid, libc::SIGKILL) };
    }
    assert!(
        before_kill.is_empty(),
        "password in a file while dumping: {before_kill:?}"
    );
    assert!(
        after_kill.is_empty(),
        "password left in files: {after_kill:?}"
    );
    assert!(!survived, "mysqldump {dump_pid} outlived the killed create");
}

fn which(tool: &str) -> std::path::PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{tool} not on PATH"))
}

/// With the MySQL backend in use, where the bulk data lies comes from the config server's row
/// of the HOST table: a depot moved to /srv (`depotLocalUrl`) is found there and backed up; the
/// table has no `workbenchLocalUrl` (as before opsi 4.1), so the workbench is at its default;
/// a row pointing at a system directory is refused, naming the table, before anything is
/// stored.
#[test]
fn the_depot_path_comes_from_the_host_table() {
    let Some(srv) = server() else { return };
    let db = TestDb::create(&srv, "depot");
    let sql = database_sql(&DataSize::small());
    with_tools(|| restore_from(&db.cfg, &mut &sql[..])).expect("loading test data");
    db.root_sql(
        "UPDATE HOST SET depotLocalUrl = 'file:///srv/opsi/depot' WHERE type = 'OpsiConfigserver';",
    );
    let fake = FakeServer::new(2, false);
    use_mysql(&fake, &db.cfg);
    let t0 = 1_733_000_000;
    write(
        &fake.p("/srv/opsi/depot/firefox/setup.opsiscript"),
        "Files_copy\n",
        0o660,
        t0,
    );
    write(
        &fake.p("/var/lib/opsi/workbench/firefox/OPSI/control"),
        "[Product]\n",
        0o664,
        t0,
    );
    // What the default paths would give: must not be taken.
    write(&fake.p("/var/lib/opsi/depot/decoy/x"), "no", 0o644, t0);
    let repo = tempfile::tempdir().unwrap();
    let repo = repo.path().join("repo");
    ok(common::repo_bin(fake.root(), &repo).arg("init"));
    let (code, _, err) = with_tools(|| {
        run(common::repo_bin(fake.root(), &repo).args([
            "create",
            "--backends",
            "depot",
            "--backends",
            "workbench",
        ]))
    });
    assert_eq!(code, 0, "{err}");
    let listed = ok(common::repo_bin(fake.root(), &repo).args(["list", "latest", "--long"]));
    assert!(
        listed.contains("DATA/DEPOT/firefox/setup.opsiscript"),
        "{listed}"
    );
    assert!(
        listed.contains("DATA/WORKBENCH/firefox/OPSI/control"),
        "{listed}"
    );
    assert!(!listed.contains("decoy"), "{listed}");

    db.root_sql("UPDATE HOST SET depotLocalUrl = 'file:///etc' WHERE type = 'OpsiConfigserver';");
    let before = common::snapshots(fake.root(), &repo).len();
    let (code, _, err) = with_tools(|| {
        run(common::repo_bin(fake.root(), &repo).args(["create", "--backends", "depot"]))
    });
    assert_ne!(code, 0);
    assert!(
        err.contains("depotLocalUrl") && err.contains("HOST"),
        "{err}"
    );
    assert_eq!(
        common::snapshots(fake.root(), &repo).len(),
        before,
        "nothing stored"
    );
}
