//! Finding and running the MySQL client tools.
//!
//! The binaries are looked up on `PATH` (`mysqldump`, `mysql`) unless `OPSI_BACKUP_MYSQLDUMP` /
//! `OPSI_BACKUP_MYSQL` name another program (tests use this to inject failing fakes). The
//! lookup happens before any credentials are written, as in the original, so a missing client
//! fails early and cleanly.

use std::env;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStderr, Command, ExitStatus};
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::mysql::config::MysqlConfig;
use crate::mysql::defaults_file::DefaultsFile;

/// One of the two client tools we drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Mysqldump,
    Mysql,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Mysqldump => "mysqldump",
            Tool::Mysql => "mysql",
        }
    }

    /// The environment variable that overrides the program to run.
    pub fn env_var(self) -> &'static str {
        match self {
            Tool::Mysqldump => "OPSI_BACKUP_MYSQLDUMP",
            Tool::Mysql => "OPSI_BACKUP_MYSQL",
        }
    }

    /// The program to run: the override if set, else the first executable on `PATH`.
    pub fn locate(self) -> Result<PathBuf> {
        let wanted = env::var_os(self.env_var()).filter(|v| !v.is_empty());
        let from_env = wanted.is_some();
        let wanted = wanted.unwrap_or_else(|| self.name().into());
        let found = if Path::new(&wanted).components().count() > 1 {
            Some(PathBuf::from(&wanted)).filter(|p| is_executable(p))
        } else {
            on_path(&wanted)
        };
        found.ok_or_else(|| {
            let how = if from_env {
                format!(
                    "{} (from {}) is not an executable file",
                    Path::new(&wanted).display(),
                    self.env_var()
                )
            } else {
                format!(
                    "not found on PATH; install the MariaDB/MySQL client or set {}",
                    self.env_var()
                )
            };
            Error::Mysql(format!("{} is not available: {how}", self.name()))
        })
    }
}

/// The first executable named `name` in a directory of `PATH`.
pub fn on_path(name: impl AsRef<Path>) -> Option<PathBuf> {
    let paths = env::var_os("PATH")?;
    env::split_paths(&paths)
        .map(|d| d.join(name.as_ref()))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// `program --defaults-file=... --host=...|--socket=...`: the defaults file must come first
/// (the clients ignore it anywhere else), and nothing secret ever goes on the command line.
pub fn command(program: &Path, defaults: &DefaultsFile, cfg: &MysqlConfig) -> Command {
    connect(Command::new(program), defaults, cfg)
}

/// `command`'s arguments added to `cmd`, which runs the tool (directly or through a wrapper
/// that passes them on).
pub fn connect(mut cmd: Command, defaults: &DefaultsFile, cfg: &MysqlConfig) -> Command {
    cmd.arg(defaults.arg()).arg(cfg.address_arg());
    defaults.hand_to(&mut cmd);
    cmd
}

/// Refuses database names the tools would take for options (`mysqldump --help`).
pub fn database_arg(database: &str) -> Result<OsString> {
    if database.is_empty() || database.starts_with('-') || database.contains('\0') {
        return Err(Error::Invalid(format!(
            "invalid MySQL database name {database:?}"
        )));
    }
    Ok(database.into())
}

/// How much of a tool's error output we keep: its start and its end. Real error output is a
/// few lines; the bound only keeps memory flat if a tool goes on complaining forever.
const KEEP_HEAD: usize = 16 * 1024;
const KEEP_TAIL: usize = 16 * 1024;

/// Reads a child's stderr on its own thread, so the child never blocks on a full stderr pipe
/// while we are busy with its stdout or stdin.
pub struct StderrCollector {
    handle: JoinHandle<String>,
}

impl StderrCollector {
    pub fn start(mut stderr: ChildStderr) -> StderrCollector {
        let handle = std::thread::spawn(move || {
            let mut head = Vec::new();
            let mut tail = std::collections::VecDeque::new();
            let mut dropped = 0u64;
            let mut buf = [0u8; 8192];
            loop {
                let n = match stderr.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                for &b in &buf[..n] {
                    if head.len() < KEEP_HEAD {
                        head.push(b);
                    } else {
                        tail.push_back(b);
                        if tail.len() > KEEP_TAIL {
                            tail.pop_front();
                            dropped += 1;
                        }
                    }
                }
            }
            let mut text = String::from_utf8_lossy(&head).into_owned();
            if dropped > 0 {
                text.push_str(&format!(
                    "\n[... {dropped} bytes of error output omitted ...]\n"
                ));
            }
            let tail: Vec<u8> = tail.into();
            text.push_str(&String::from_utf8_lossy(&tail));
            text.trim().to_string()
        });
        StderrCollector { handle }
    }

    /// Waits for the child to close stderr and returns what it wrote.
    pub fn finish(self) -> String {
        self.handle
            .join()
            .unwrap_or_else(|_| "(error output could not be read)".into())
    }
}

/// "exit status 2" / "killed by signal 9".
pub fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

/// The tool's own error text followed by how it ended, or just the latter when it said nothing.
/// The password is masked in case a tool ever echoes it (none is known to).
pub fn failure_text(stderr: &str, how: &str, cfg: &MysqlConfig) -> String {
    let text = if stderr.is_empty() {
        format!("no error output ({how})")
    } else {
        format!("{stderr} ({how})")
    };
    redact(text, &cfg.password)
}

fn redact(text: String, password: &str) -> String {
    // Very short passwords would turn every message into asterisks; they also cannot be
    // told apart from ordinary text, so leave those alone.
    if password.chars().count() >= 4 && text.contains(password) {
        text.replace(password, "********")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_echoed_password() {
        assert_eq!(
            redact("bad pw hunter2!".into(), "hunter2!"),
            "bad pw ********"
        );
        assert_eq!(redact("a b c".into(), "a"), "a b c");
    }

    #[test]
    fn database_names_are_not_options() {
        assert!(database_arg("--help").is_err());
        assert!(database_arg("").is_err());
        assert_eq!(database_arg("opsi").unwrap(), "opsi");
    }
}
