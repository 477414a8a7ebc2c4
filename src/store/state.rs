//! `state/`: what the repository records about its own upkeep (spec: `store-format/README.md`,
//! section "State files"). Small JSON files, each written durably under the shared lock and
//! read with a size limit: they come from disk, and a damaged one must cost a warning, not
//! memory.

use std::io::{Read, Write};
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::store::durable;

/// A state file larger than this is damaged (the pack list of a 100 TB repository is smaller).
const MAX_STATE_FILE: u64 = 256 << 20;

/// Writes `state/<name>` durably: under `tmp/` with a unique name (two verifies may end
/// together), fsynced, renamed over the old one, `state/` fsynced (and the repository
/// directory when `state/` was just made).
pub(crate) fn write(root: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let state = root.join("state");
    let new_dir = !state.exists();
    durable::create_dir(&state)?;
    if new_dir {
        durable::sync_dir(root)?;
    }
    let tmp = root.join("tmp").join(durable::temp_name(name)?);
    let mut f = durable::create_new(&tmp)?;
    f.write_all(bytes).path_ctx("writing", &tmp)?;
    f.sync_all().path_ctx("syncing", &tmp)?;
    durable::rename_durable(&tmp, &state.join(name))
}

/// The bytes of `state/<name>`, or `None` when it does not exist.
pub(crate) fn read(root: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    let path = root.join("state").join(name);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_STATE_FILE + 1)
        .read_to_end(&mut bytes)
        .path_ctx("reading", &path)?;
    if bytes.len() as u64 > MAX_STATE_FILE {
        return Err(Error::Repository(format!(
            "{} is larger than any state file: damaged",
            path.display()
        )));
    }
    Ok(Some(bytes))
}
