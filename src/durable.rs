//! Making a rename durable: the directory that holds the new name is fsynced, or the rename
//! may not survive a crash. Shared by the archive writer, restore, `--new-server-id` and the
//! repository; imports only `error`.

use std::fs::File;
use std::path::Path;

use crate::error::{IoContext, Result};

/// Fsyncs the directory containing `path`. Its error is the caller's: a rename that may not
/// survive a crash is not done.
pub(crate) fn sync_parent(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        Some(_) => Path::new("."),
        None => return Ok(()),
    };
    sync_dir(dir)
}

/// Fsyncs the directory `dir`, so that renames and creations inside it survive a power loss.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .path_ctx("cannot flush to disk the directory", dir)
}
