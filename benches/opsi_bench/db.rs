//! The bench server's database: a dedicated MariaDB database and user with the audit-heavy
//! shape of opsi's, the peers' mysqldump, and the original's serial reload. Shared by the
//! benches that back up a generated server (opsi_bench, s3_bench).

use std::collections::BTreeSet;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::mysql_schema::DataSize;

/// The dump size of opsi's audit-heavy databases: ~80 KB of rows per client.
pub(crate) fn data_size(clients: usize, seed: u64) -> DataSize {
    DataSize {
        clients,
        depots: 4,
        products: 180,
        products_per_client: 60,
        software: 6000,
        software_per_client: 290,
        blobs: 0,
        seed,
    }
}

/// A dedicated database and user, dropped when this goes out of scope.
pub(crate) struct Db {
    socket: String,
    name: String,
    user: String,
    password: String,
    keep: bool,
}

impl Db {
    fn root_cmd(&self) -> Command {
        let mut c = Command::new("mysql");
        c.arg(format!("--socket={}", self.socket))
            .args(["-uroot", "--batch"]);
        c
    }

    fn root_sql(&self, sql: &str) {
        let out = self
            .root_cmd()
            .args(["-e", sql])
            .output()
            .expect("running mysql");
        assert!(
            out.status.success(),
            "mysql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub(crate) fn create(socket: &str, keep: bool) -> Db {
        let tag = std::process::id();
        let db = Db {
            socket: socket.into(),
            name: format!("opsi_bench_{tag}"),
            user: format!("opsi_bench_{tag}"),
            password: format!("b3nch'{tag}\"pw"),
            keep,
        };
        db.root_sql(&format!(
            "CREATE DATABASE `{0}` DEFAULT CHARACTER SET utf8; CREATE USER '{1}'@'localhost' IDENTIFIED BY '{2}'; GRANT ALL ON `{0}`.* TO '{1}'@'localhost';",
            db.name,
            db.user,
            db.password.replace('\'', "''")
        ));
        db
    }

    /// Pipes SQL written by `f` into `mysql` on this database.
    pub(crate) fn feed(&self, f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) {
        let mut child = self
            .root_cmd()
            .arg(&self.name)
            .stdin(Stdio::piped())
            .spawn()
            .expect("starting mysql");
        {
            let mut w = BufWriter::with_capacity(1 << 20, child.stdin.take().unwrap());
            writeln!(w, "SET autocommit=0; SET unique_checks=0;").unwrap();
            f(&mut w).expect("writing SQL into mysql");
            writeln!(w, "COMMIT;").unwrap();
            w.flush().unwrap();
        }
        assert!(child.wait().unwrap().success(), "mysql failed loading data");
    }

    /// opsi's mysql.conf for this database (a Python dict literal).
    pub(crate) fn mysql_conf(&self) -> String {
        let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        format!(
            "# -*- coding: utf-8 -*-\n\nmodule = 'MySQL'\nconfig = {{\n    \"address\":                   u{},\n    \"database\":                  u{},\n    \"username\":                  u{},\n    \"password\":                  u{},\n    \"databaseCharset\":           \"utf8\",\n    \"connectionPoolSize\":        20,\n    \"connectionPoolMaxOverflow\": 10,\n    \"connectionPoolTimeout\":     30,\n}}\n",
            q(&self.socket),
            q(&self.name),
            q(&self.user),
            q(&self.password)
        )
    }

    /// The original's restore of the database: DROP/CREATE DATABASE, then `mysql db < dump`.
    pub(crate) fn serial_load_cmd(&self, dump: &Path) -> Command {
        let q = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
        let mysql = format!(
            "mysql --socket={} --user={} --password={}",
            q(&self.socket),
            q(&self.user),
            q(&self.password)
        );
        let mut c = Command::new("sh");
        c.arg("-c").arg(format!(
            "{mysql} -e 'DROP DATABASE IF EXISTS `{0}`; CREATE DATABASE `{0}`' && exec {mysql} {0} < {1}",
            self.name,
            q(&dump.to_string_lossy())
        ));
        c
    }

    /// The peers' dump: the same mysqldump options opsi-backup uses.
    pub(crate) fn dump_cmd(&self, dest: &Path) -> (Command, PathBuf) {
        let mut c = Command::new("mysqldump");
        c.arg(format!("--socket={}", self.socket))
            .arg(format!("--user={}", self.user))
            .arg(format!("--password={}", self.password))
            .args([
                "--lock-tables",
                "--add-drop-table",
                "--skip-dump-date",
                "--order-by-primary",
            ])
            .arg(&self.name);
        (c, dest.to_path_buf())
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept database {}", self.name);
            return;
        }
        let _ = self
            .root_cmd()
            .args([
                "-e",
                &format!(
                    "DROP DATABASE IF EXISTS `{}`; DROP USER IF EXISTS '{}'@'localhost';",
                    self.name, self.user
                ),
            ])
            .status();
    }
}

/// Client ids named in the SQL's `WHERE hostId=` / `INSERT INTO HOST` statements.
pub(crate) fn clients_in(sql: &[u8]) -> BTreeSet<String> {
    let text = String::from_utf8_lossy(sql);
    let mut ids = BTreeSet::new();
    for line in text.lines() {
        let at = if line.starts_with("UPDATE `HOST`") {
            line.find("`hostId`='").map(|i| i + 10)
        } else if line.starts_with("INSERT INTO `HOST` VALUES ('") {
            Some(28)
        } else {
            None
        };
        if let Some(i) = at {
            if let Some(len) = line[i..].find('\'') {
                ids.insert(line[i..i + len].to_string());
            }
        }
    }
    ids
}
