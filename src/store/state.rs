//! `state/`: what the repository records about its own upkeep (spec: `store-format/README.md`,
//! section "State files"). Small JSON files, each written durably under the shared lock and
//! read with a size limit: they come from disk, and a damaged one must cost a warning, not
//! memory.

use std::io::{Read, Write};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::logging;
use crate::store::durable;

/// A state file larger than this is damaged (the pack list of a 100 TB repository is smaller).
const MAX_STATE_FILE: u64 = 256 << 20;

/// Writes `state/<name>` durably: under `tmp/` with a unique name (two verifies may end
/// together), fsynced, renamed over the old one, `state/` fsynced (and the repository
/// directory when `state/` was just made).
fn write(root: &Path, name: &str, bytes: &[u8]) -> Result<()> {
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
fn read(root: &Path, name: &str) -> Result<Option<Vec<u8>>> {
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

/// Writes `value` as `state/<name>`, best effort: a record that cannot be written (read-only
/// mount) costs a warning naming `what`, never the command that keeps it.
pub(crate) fn save<T: Serialize>(root: &Path, name: &str, what: &str, value: &T) {
    let written = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::Invalid(e.to_string()))
        .and_then(|json| write(root, name, &json));
    if let Err(e) = written {
        logging::warning(format!("could not record {what} in state/{name}: {e}"));
    }
}

/// `state/<name>` parsed, or `None` when it does not exist; a damaged one is an error.
pub(crate) fn load<T: DeserializeOwned>(root: &Path, name: &str) -> Result<Option<T>> {
    let Some(bytes) = read(root, name)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        Error::Repository(format!(
            "{} is not valid: {e}",
            root.join("state").join(name).display()
        ))
    })
}
