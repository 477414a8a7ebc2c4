//! `restore --new-server-id` through the command line: the file backend (from an archive and
//! from a snapshot) and the MySQL backend end up with no trace of the old config server id.

mod common;
#[path = "common/mysql_env.rs"]
mod mysql_env;
#[path = "common/mysql_schema.rs"]
mod mysql_schema;

use std::path::Path;

use common::fake_server::{write, FakeServer, SERVER};
use common::{bin, ok, run};

const NEW: &str = "newserver.example.org";

/// Every file under `dir` that mentions `needle`, case-insensitively.
fn mentions(dir: &Path, needle: &str) -> Vec<String> {
    let needle = needle.to_lowercase();
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.path().to_string_lossy().to_lowercase().contains(&needle)
                || (e.file_type().is_file()
                    && String::from_utf8_lossy(&std::fs::read(e.path()).unwrap())
                        .to_lowercase()
                        .contains(&needle))
        })
        .map(|e| e.path().display().to_string())
        .collect()
}

fn check_renamed(target: &Path) {
    let config = target.join("var/lib/opsi/config");
    assert_eq!(
        mentions(&config, SERVER),
        Vec::<String>::new(),
        "old id left in the file backend"
    );
    assert!(config.join(format!("depots/{NEW}.ini")).is_file());
    assert!(std::fs::read_to_string(config.join("config.ini"))
        .unwrap()
        .contains(NEW));
    // Client data is otherwise unchanged.
    let c = std::fs::read_to_string(config.join("clients/client0003.example.org.ini")).unwrap();
    assert!(c.contains("description = Client 3"), "{c}");
}

#[test]
fn file_backend_renamed_from_archive_and_snapshot() {
    let server = FakeServer::new(12, false);
    // The config server appears in the usual places too.
    let url = format!("[clientconfig.configserver.url]\ndefaultvalues = [\"https://{SERVER}:4447/rpc\"]\n[clientconfig.depot.id]\ndefaultvalues = [\"{SERVER}\"]\n");
    write(
        &server.p("/var/lib/opsi/config/config.ini"),
        url,
        0o660,
        1_732_000_000,
    );
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("a.tar.bz2");
    ok(bin(server.root()).arg("create").arg(&archive));

    let target = tempfile::tempdir().unwrap();
    ok(bin(target.path())
        .args([
            "restore",
            "--configuration",
            "--force",
            "--new-server-id",
            NEW,
        ])
        .arg(&archive));
    check_renamed(target.path());

    let repo = work.path().join("repo");
    ok(bin(server.root())
        .env("OPSI_BACKUP_REPOSITORY", &repo)
        .arg("init"));
    ok(bin(server.root())
        .env("OPSI_BACKUP_REPOSITORY", &repo)
        .arg("import")
        .arg(&archive));
    let target = tempfile::tempdir().unwrap();
    ok(bin(target.path())
        .env("OPSI_BACKUP_REPOSITORY", &repo)
        .args([
            "restore",
            "latest",
            "--configuration",
            "--force",
            "--new-server-id",
            NEW,
        ]));
    check_renamed(target.path());
}

#[test]
fn invalid_server_id_is_refused_before_anything_is_restored() {
    let server = FakeServer::new(2, false);
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("a.tar");
    ok(bin(server.root())
        .args(["create", "-c", "none"])
        .arg(&archive));
    let target = tempfile::tempdir().unwrap();
    for bad in [
        "not an id",
        "nodots",
        "under_score.example.org",
        "-x.example.org",
    ] {
        let id = format!("--new-server-id={bad}");
        let (code, _, err) = run(bin(target.path())
            .args(["restore", "--configuration", "--force", &id])
            .arg(&archive));
        assert_eq!(code, 1, "{bad}: {err}");
        assert_eq!(
            std::fs::read_dir(target.path()).unwrap().count(),
            0,
            "{bad}: something was restored"
        );
    }
}

#[test]
fn mysql_backend_renamed() {
    let Some(srv) = mysql_env::server() else {
        return;
    };
    let db = mysql_env::TestDb::create(&srv, "rencli");
    let sql = mysql_schema::database_sql(&mysql_schema::DataSize::small());
    mysql_env::with_tools(|| opsi_backup::mysql::restore_from(&db.cfg, &mut &sql[..])).unwrap();
    let old = "config.domain.example";
    assert_eq!(
        db.root_sql(&format!("SELECT COUNT(*) FROM HOST WHERE hostId='{old}'"))
            .trim(),
        "1"
    );

    let fake = FakeServer::new(2, false);
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let conf = format!(
        "module = 'MySQL'\nconfig = {{\"address\": {}, \"database\": {}, \"username\": {}, \"password\": {}}}\n",
        q(&db.cfg.address),
        q(&db.cfg.database),
        q(&db.cfg.username),
        q(&db.cfg.password)
    );
    write(
        &fake.p("/etc/opsi/backends/mysql.conf"),
        conf,
        0o600,
        1_732_000_000,
    );
    write(
        &fake.p("/etc/opsi/backendManager/dispatch.conf"),
        ".* : mysql\n",
        0o644,
        1_732_000_000,
    );
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("m.tar.gz");
    let (code, _, err) =
        mysql_env::with_tools(|| run(bin(fake.root()).args(["create", "-c", "gz"]).arg(&archive)));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = mysql_env::with_tools(|| {
        run(bin(fake.root())
            .args(["restore", "--backends", "mysql", "--new-server-id", NEW])
            .arg(&archive))
    });
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        db.root_sql(&format!(
            "SELECT COUNT(*) FROM HOST WHERE hostId='{NEW}' AND type='OpsiConfigserver'"
        ))
        .trim(),
        "1"
    );
    // No trace of the old id in any text column: dump the database and look.
    let dump = std::process::Command::new("mysqldump")
        .args(["--no-defaults", "--user=root", "--skip-comments"])
        .arg(format!(
            "--socket={}",
            if srv.address.starts_with('/') {
                srv.address.as_str()
            } else {
                "/run/mysqld/mysqld.sock"
            }
        ))
        .arg(&db.name)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&dump.stdout).to_lowercase();
    assert!(
        dump.status.success() && text.contains("insert into"),
        "dump failed"
    );
    assert!(!text.contains(old), "old id left in the database");
}
