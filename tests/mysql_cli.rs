//! The MySQL backend end to end through the command line against the real MariaDB:
//! create (mysqldump streamed into the archive) -> drop -> restore -> the same rows; and a
//! failing mysqldump fails the whole create, leaves no archive and never shows the password.
//! Needs OPSI_BACKUP_TEST_MYSQL (see tests/common/mysql_env.rs); says loudly when skipped.

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
