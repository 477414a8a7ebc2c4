//! `state/`: what the repository records about its own upkeep (spec: `store-format/README.md`,
//! section "State files"). Small JSON files, each replaced durably under the shared lock and
//! read with a size limit: they come from disk, and a damaged one must cost a warning, not
//! memory.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::logging;
use crate::store::storage::{state_key, Storage};

/// A state file larger than this is damaged (the pack list of a 100 TB repository is smaller).
const MAX_STATE_FILE: u64 = 256 << 20;

/// The bytes of `state/<name>`, or `None` when it does not exist.
fn read(storage: &dyn Storage, name: &str) -> Result<Option<Vec<u8>>> {
    let key = state_key(name);
    storage.read_small(&key, MAX_STATE_FILE).map_err(|e| {
        let shown = storage.show(&key);
        match e.kind() {
            std::io::ErrorKind::InvalidData => {
                Error::Repository(format!("{shown} is larger than any state file: damaged"))
            }
            _ => Error::io(format!("reading {shown}"), e),
        }
    })
}

/// Writes `value` as `state/<name>` (`Storage::replace`: durable, old or new, never a mix; two
/// verifies that end together both write, the last one's record stays), best effort: a
/// record that cannot be written (read-only mount) costs a warning naming `what`, never the
/// command that keeps it.
pub(crate) fn save<T: Serialize>(storage: &dyn Storage, name: &str, what: &str, value: &T) {
    let written = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::Invalid(e.to_string()))
        .and_then(|json| storage.replace(&state_key(name), &json));
    if let Err(e) = written {
        logging::warning(format!("could not record {what} in state/{name}: {e}"));
    }
}

/// `state/<name>` parsed, or `None` when it does not exist; a damaged one is an error.
pub(crate) fn load<T: DeserializeOwned>(storage: &dyn Storage, name: &str) -> Result<Option<T>> {
    let Some(bytes) = read(storage, name)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        Error::Repository(format!(
            "{} is not valid: {e}",
            storage.show(&state_key(name))
        ))
    })
}
