//! Test access to a MySQL/MariaDB server for the `mysql` module's integration tests.
//!
//! The server is given by `OPSI_BACKUP_TEST_MYSQL`, either
//! - a socket path: `/run/mysqld/mysqld.sock` (user root, empty password), or
//! - `key=value` pairs separated by `;`: `socket=/run/mysqld/mysqld.sock;user=root;password=`
//!   or `host=127.0.0.1;port=3306;user=root;password=secret` (values cannot contain `;`).
//!
//! The account must be allowed to create databases and users. `port` is passed to the client
//! tools through `MYSQL_TCP_PORT` (opsi's `mysql.conf` has no port, nor has `MysqlConfig`).
//! Each test gets its own database and its own user with a nasty password, dropped at the end.
//!
//! Without `OPSI_BACKUP_TEST_MYSQL` a MySQL test fails (a test that returns early would count
//! as passed without testing anything), unless `OPSI_BACKUP_SKIP_MYSQL=1` asks to skip them
//! knowingly: then each says on stderr that it was SKIPPED (not tested) and passes.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use opsi_backup::mysql::{quote_identifier, quote_string, run_sql, MysqlConfig};

/// A password exercising option-file quoting: blanks at both ends, both quote kinds,
/// backslashes (one at the end), `#` and `;` comment characters, `=`, and non-ASCII.
pub(crate) const NASTY_PASSWORD: &str = " pä'ss\"w\\o rd #x;y=z\\";

#[derive(Debug, Clone)]
pub(crate) struct TestServer {
    pub address: String,
    pub user: String,
    pub password: String,
}

/// Set to `1` to skip the MySQL tests knowingly when no server is at hand.
pub(crate) const SKIP_ENV: &str = "OPSI_BACKUP_SKIP_MYSQL";

/// The server from `OPSI_BACKUP_TEST_MYSQL`. Without one the calling test panics, or, with
/// `OPSI_BACKUP_SKIP_MYSQL=1`, gets `None` after saying loudly that it tests nothing.
pub(crate) fn server() -> Option<TestServer> {
    static SERVER: OnceLock<Option<TestServer>> = OnceLock::new();
    let server = SERVER.get_or_init(|| {
        let spec = std::env::var("OPSI_BACKUP_TEST_MYSQL")
            .ok()
            .filter(|s| !s.is_empty())?;
        let server = parse(&spec);
        Some(server)
    });
    if server.is_none() {
        skip_or_fail();
    }
    server.clone()
}

/// No server: fails the test unless skipping was asked for, and then says so.
fn skip_or_fail() {
    if std::env::var_os(SKIP_ENV).is_none_or(|v| v != "1") {
        panic!(
            "OPSI_BACKUP_TEST_MYSQL is not set: start MariaDB and run `sh .ci/mysql-setup.sh` \
             (see README); set {SKIP_ENV}=1 to skip these tests knowingly"
        );
    }
    // The harness names each test's thread after the test.
    let current = std::thread::current();
    let test = current.name().unwrap_or("a MySQL test");
    // Straight to the process's stderr: the test harness captures eprintln! output.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n***** {test}: SKIPPED (not tested): no MySQL server, {SKIP_ENV}=1"
    );
}

fn parse(spec: &str) -> TestServer {
    if spec.starts_with('/') {
        return TestServer {
            address: spec.into(),
            user: "root".into(),
            password: String::new(),
        };
    }
    let mut server = TestServer {
        address: "localhost".into(),
        user: "root".into(),
        password: String::new(),
    };
    for part in spec.split(';').filter(|p| !p.trim().is_empty()) {
        let (key, value) = part
            .split_once('=')
            .unwrap_or_else(|| panic!("OPSI_BACKUP_TEST_MYSQL: expected key=value, got {part:?}"));
        match key.trim() {
            "socket" | "host" | "address" => server.address = value.into(),
            "user" => server.user = value.into(),
            "password" => server.password = value.into(),
            // Set once, before any test spawns a client (under the tool lock's write side).
            "port" => {
                let _w = tool_env_write();
                std::env::set_var("MYSQL_TCP_PORT", value.trim());
            }
            other => panic!("OPSI_BACKUP_TEST_MYSQL: unknown key {other:?}"),
        }
    }
    server
}

/// Tests run in parallel threads of one process, and the tool overrides
/// (`OPSI_BACKUP_MYSQLDUMP`, `OPSI_BACKUP_MYSQL`) are process-wide: tests that run the tools
/// hold the read side, tests that change the overrides hold the write side.
fn tool_env_lock() -> &'static RwLock<()> {
    static LOCK: RwLock<()> = RwLock::new(());
    &LOCK
}

fn tool_env_read() -> RwLockReadGuard<'static, ()> {
    tool_env_lock().read().unwrap_or_else(|e| e.into_inner())
}

fn tool_env_write() -> RwLockWriteGuard<'static, ()> {
    tool_env_lock().write().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` (which runs the client tools) while no test changes the tool overrides.
/// Do not nest, and do not call while holding a [`ToolOverride`].
pub(crate) fn with_tools<T>(f: impl FnOnce() -> T) -> T {
    let _guard = tool_env_read();
    f()
}

/// Sets tool overrides for the lifetime of the value, excluding every other test's tool runs;
/// removes them again when dropped (also when the test panics).
pub(crate) struct ToolOverride {
    vars: Vec<&'static str>,
    _guard: RwLockWriteGuard<'static, ()>,
}

impl ToolOverride {
    pub(crate) fn set(vars: &[(&'static str, &std::path::Path)]) -> ToolOverride {
        let guard = tool_env_write();
        for (k, v) in vars {
            std::env::set_var(k, v);
        }
        ToolOverride {
            vars: vars.iter().map(|(k, _)| *k).collect(),
            _guard: guard,
        }
    }
}

impl Drop for ToolOverride {
    fn drop(&mut self) {
        for k in &self.vars {
            std::env::remove_var(k);
        }
    }
}

impl TestServer {
    pub(crate) fn root(&self) -> MysqlConfig {
        MysqlConfig {
            address: self.address.clone(),
            database: String::new(),
            username: self.user.clone(),
            password: self.password.clone(),
        }
    }
}

/// Create before taking a [`ToolOverride`] (it runs the tools itself), so that it is dropped
/// after the override.
///
/// A database and a user (password [`NASTY_PASSWORD`]) allowed everything on it; both are
/// dropped when this goes out of scope.
pub(crate) struct TestDb {
    pub name: String,
    /// The test user's view: what an opsi `mysql.conf` would hold.
    pub cfg: MysqlConfig,
    root: MysqlConfig,
}

impl TestDb {
    pub(crate) fn create(server: &TestServer, tag: &str) -> TestDb {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("obt_{tag}_{}_{n}", std::process::id());
        let root = server.root();
        let db = quote_identifier(&name).unwrap();
        let user = quote_string(&name);
        let pw = quote_string(NASTY_PASSWORD);
        let mut sql = format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db};\n");
        for host in ["localhost", "%"] {
            let host = quote_string(host);
            sql.push_str(&format!(
                "DROP USER IF EXISTS {user}@{host}; CREATE USER {user}@{host} IDENTIFIED BY {pw};\
                 GRANT ALL PRIVILEGES ON {db}.* TO {user}@{host};\n"
            ));
        }
        with_tools(|| run_sql(&root, None, &sql)).expect("creating the test database and user");
        let cfg = MysqlConfig {
            address: server.address.clone(),
            database: name.clone(),
            username: name.clone(),
            password: NASTY_PASSWORD.into(),
        };
        TestDb { name, cfg, root }
    }

    /// Runs SQL as root (e.g. to grant or to inspect).
    pub(crate) fn root_sql(&self, sql: &str) -> String {
        with_tools(|| run_sql(&self.root, Some(&self.name), sql)).expect("root SQL")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let db = quote_identifier(&self.name).unwrap();
        let user = quote_string(&self.name);
        let sql = format!(
            "DROP DATABASE IF EXISTS {db}; DROP USER IF EXISTS {user}@'localhost'; DROP USER IF EXISTS {user}@'%';"
        );
        if let Err(e) = with_tools(|| run_sql(&self.root, None, &sql)) {
            eprintln!("cleaning up test database {}: {e}", self.name);
        }
    }
}
