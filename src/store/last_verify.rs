//! `state/last-verify.json`: when the whole repository was last verified and with what
//! result, so that monitoring (`health`) can tell a repository nobody checks. Spec:
//! `store-format/README.md`, section "State files".

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::logging;
use crate::store::durable;
use crate::store::verify::VerifyReport;

/// The file, relative to the repository.
pub(crate) const LAST_VERIFY: &str = "state/last-verify.json";

/// The outcome of the last `verify` of the whole repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LastVerify {
    /// Unix seconds when it started and when it ended.
    pub(crate) started: i64,
    pub(crate) finished: i64,
    /// True when it read everything and found no problem.
    pub(crate) ok: bool,
    /// How many problems it reported.
    pub(crate) problems: u64,
    pub(crate) snapshots: u64,
    pub(crate) packs: u64,
    pub(crate) chunks: u64,
    pub(crate) bytes: u64,
    /// Why it stopped before the end, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

impl LastVerify {
    pub(crate) fn of(started: i64, outcome: &Result<VerifyReport>) -> LastVerify {
        let finished = chrono::Utc::now().timestamp();
        match outcome {
            Ok(r) => LastVerify {
                started,
                finished,
                ok: r.is_ok(),
                problems: r.problems.len() as u64,
                snapshots: r.snapshots,
                packs: r.packs,
                chunks: r.chunks,
                bytes: r.bytes,
                error: None,
            },
            Err(e) => LastVerify {
                started,
                finished,
                ok: false,
                problems: 0,
                snapshots: 0,
                packs: 0,
                chunks: 0,
                bytes: 0,
                error: Some(e.to_string()),
            },
        }
    }
}

/// Writes the record durably (under `tmp/`, fsync, rename, fsync of `state/`). Best effort:
/// a verify whose record cannot be written (read-only mount) still reports its result; the
/// record then stays older and monitoring says so.
pub(crate) fn record(root: &Path, last: &LastVerify) {
    if let Err(e) = write(root, last) {
        logging::warning(format!("could not record the verify in {LAST_VERIFY}: {e}"));
    }
}

fn write(root: &Path, last: &LastVerify) -> Result<()> {
    let state = root.join("state");
    let new_dir = !state.exists();
    durable::create_dir(&state)?;
    if new_dir {
        durable::sync_dir(root)?;
    }
    // A unique temporary name: two verifies (both under the shared lock) may end together.
    let tmp = root.join("tmp").join(durable::temp_name("last-verify")?);
    let mut f = durable::create_new(&tmp)?;
    let json = serde_json::to_vec_pretty(last).map_err(|e| Error::Invalid(e.to_string()))?;
    f.write_all(&json).path_ctx("writing", &tmp)?;
    f.sync_all().path_ctx("syncing", &tmp)?;
    durable::rename_durable(&tmp, &root.join(LAST_VERIFY))
}

/// The record, if a verify of the whole repository ever wrote one.
pub(crate) fn read(root: &Path) -> Result<Option<LastVerify>> {
    let path = root.join(LAST_VERIFY);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::Repository(format!("{} is not valid: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let last = LastVerify::of(7, &Err(Error::Corrupt("pack abc cannot be read".into())));
        record(dir.path(), &last);
        let back = read(dir.path()).unwrap().unwrap();
        assert_eq!(back, last);
        assert!(!back.ok && back.error.unwrap().contains("pack abc"));
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }
}
