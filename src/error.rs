//! The crate's error type. Modules return typed errors; the CLI turns them into one message
//! and an exit code (see `cli/mod.rs`).

use std::fmt::Display;
use std::io;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error with what was being done and on which path. The cause is part of the
    /// message, not a `source`: `{:#}` at the top would name it twice.
    #[error("{context}: {cause}")]
    Io { context: String, cause: io::Error },
    /// An archive, chunk or snapshot whose bytes are not what they claim to be.
    #[error("{0}")]
    Corrupt(String),
    /// A member that would write outside its restore target.
    #[error("unsafe member refused: {0}")]
    UnsafePath(String),
    /// A configuration file (backends, dispatch.conf, opsi-backup.toml) that cannot be used.
    #[error("{0}")]
    Config(String),
    /// A request that cannot be fulfilled as asked (wrong backend name, missing data...).
    #[error("{0}")]
    Invalid(String),
    /// mysqldump or mysql failed; the text is the tool's own error output.
    #[error("{0}")]
    Mysql(String),
    /// The repository is unusable.
    #[error("{0}")]
    Repository(String),
    /// There is no repository where one was named: no directory, or no `config.json` in it.
    #[error("{0}")]
    NoRepository(String),
    /// The repository lock was not obtained within the lock wait.
    #[error("{0}")]
    LockBusy(String),
    /// `index.sqlite` is damaged (SQLite says corrupt or not a database). `repository` is
    /// the repository's directory when known, for the message's `rebuild-index` advice.
    #[error("{}", index_damaged(repository.as_deref(), detail))]
    IndexDamaged {
        repository: Option<std::path::PathBuf>,
        detail: String,
    },
    /// An encrypted repository's password is wrong, or none was given: a usage error.
    #[error("{0}")]
    Password(String),
    /// The user declined a confirmation, or it could not be asked.
    #[error("{0}")]
    Aborted(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn index_damaged(repository: Option<&Path>, detail: &str) -> String {
    let repo = repository.map_or_else(|| "<repository>".into(), |p| p.display().to_string());
    format!(
        "the repository index {repo}/index.sqlite is damaged ({detail}); nothing was changed. \
         Run `opsi-backup --repository {repo} rebuild-index`: it moves the damaged index aside \
         and rebuilds it from the pack and snapshot files"
    )
}

impl Error {
    pub fn io(context: impl Display, source: io::Error) -> Error {
        Error::Io {
            context: context.to_string(),
            cause: source,
        }
    }
}

/// True when `e` says the file system has no room left (full disk or exhausted quota).
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// An error writing `file`; a full disk is said in words, naming the file that could not be
/// written (not the member being read, nor "damaged archive").
pub fn write_error(file: &Path, e: io::Error) -> Error {
    if is_disk_full(&e) {
        Error::io(
            format!("cannot write {}: the disk is full", file.display()),
            e,
        )
    } else {
        Error::io(format!("writing {}", file.display()), e)
    }
}

/// Which side of a copy failed.
#[derive(Debug)]
pub enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// `io::copy` that tells a failed read from a failed write, so that a full disk is not
/// reported as an error reading the source.
pub fn copy_apart(
    r: &mut dyn io::Read,
    w: &mut dyn io::Write,
) -> std::result::Result<u64, CopyError> {
    let mut buf = [0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        w.write_all(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
    }
}

/// Adds "what was being done" to an `io::Result`.
pub trait IoContext<T> {
    fn ctx(self, context: impl Display) -> Result<T>;
    fn path_ctx(self, what: &str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl Display) -> Result<T> {
        self.map_err(|e| Error::io(context, e))
    }
    fn path_ctx(self, what: &str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(format!("{what} {}", path.display()), e))
    }
}
