//! What the repository commands share: opening the repository the options name and telling
//! an archive argument from a snapshot argument.

use std::path::{Path, PathBuf};

use crate::cli::Global;
use crate::error::{Error, Result};
use crate::store::Repository;

pub(super) fn repository_path(g: &Global) -> Result<PathBuf> {
    g.repository.clone().ok_or_else(|| {
        Error::Invalid(
            "no repository given: use --repository DIR or set OPSI_BACKUP_REPOSITORY".into(),
        )
    })
}

pub(super) fn open(g: &Global) -> Result<Repository> {
    Repository::open(&repository_path(g)?)
}

/// `open` for `rebuild-index`: a damaged index is moved aside instead of refused.
pub(super) fn open_for_rebuild(g: &Global) -> Result<Repository> {
    Repository::open_for_rebuild(&repository_path(g)?)
}

/// An argument names an archive when it is an existing file, or when no repository is set;
/// otherwise it names a snapshot (`latest` or an id prefix).
pub(super) fn is_archive(g: &Global, arg: &Path) -> bool {
    g.repository.is_none() || arg.is_file()
}

/// Refuses an archive argument that names no file but a snapshot (`latest`, hex digits) when
/// no repository is set: the missing repository is the cause, not an archive that cannot be
/// opened. Other missing files are left to the archive's own "cannot open archive" error.
pub(super) fn ensure_not_snapshot(g: &Global, arg: &Path) -> Result<()> {
    if g.repository.is_some() || arg.exists() {
        return Ok(());
    }
    let s = arg.to_string_lossy();
    let snapshot_like = s == "latest"
        || (!s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit()));
    if !snapshot_like {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "{s} is no archive file here, and no repository is given to look for a snapshot {s} in: \
         give it with --repository DIR (or OPSI_BACKUP_REPOSITORY, or `repository` in {})",
        crate::settings::SETTINGS_FILE
    )))
}
