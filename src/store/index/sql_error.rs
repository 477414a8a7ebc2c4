//! SQLite's errors as the store's: a damaged database file is `Error::IndexDamaged`, anything
//! else an index error of the repository.

use std::path::Path;

use crate::error::{Error, Result};

pub(super) fn sql(e: rusqlite::Error) -> Error {
    if is_damage(&e) {
        return Error::IndexDamaged {
            repository: None,
            detail: e.to_string(),
        };
    }
    Error::Repository(format!("repository index (index.sqlite): {e}"))
}

/// Whether SQLite found the database file damaged (or not a database at all).
pub(super) fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// `IndexDamaged` errors of `r` name the repository `root`.
pub(super) fn in_repository<T>(root: &Path, r: Result<T>) -> Result<T> {
    r.map_err(|e| match e {
        Error::IndexDamaged { detail, .. } => Error::IndexDamaged {
            repository: Some(root.to_path_buf()),
            detail,
        },
        e => e,
    })
}

/// A damaged member list or reference list (the rows are there, their bytes make no sense).
pub(crate) fn damaged(what: &str) -> Error {
    Error::Corrupt(format!(
        "index: member list damaged ({what}); run rebuild-index"
    ))
}

pub(crate) trait SqlContext<T> {
    fn sql(self) -> Result<T>;
}

impl<T> SqlContext<T> for rusqlite::Result<T> {
    fn sql(self) -> Result<T> {
        self.map_err(sql)
    }
}
